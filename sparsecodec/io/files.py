"""How the library touches the file system: files read are regular files opened once, files
written appear whole or not at all, even beside hostile neighbours.

Reading (:func:`open_regular`): the path is opened without blocking and refused unless it is a
regular file, so a FIFO, a device or a folder given as a model file is an error, not a hang.

Writing: every file the library writes (containers, HDF5 files, shard indexes, ``unpack``
outputs) goes through :func:`atomic_output`:

- the temporary is created *exclusively* (``mkstemp``: ``O_CREAT | O_EXCL``) under an
  unpredictable name ``.TARGET.XXXXXXXX.sc-partial`` in the target's folder, so a symlink or file
  planted there is never followed, truncated or reused; it then gets the mode a plain
  ``open(path, "w")`` would give (0666 less the umask);
- it is written through the descriptor that created it (never reopened by name), held under an
  exclusive ``flock`` while the writer lives;
- when complete it is renamed over the target (``os.replace``, atomic on POSIX), so concurrent
  writers of one target never share a temporary: the last rename wins and every file that
  appears under the target's name is whole;
- a writer killed before the rename (SIGKILL, power loss) leaves its temporary unlocked; the next
  save of the same target removes such leftovers (those whose lock it can take: a live writer's
  is always locked).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

try:  # POSIX; elsewhere temporaries are still exclusive, but leftovers are not cleaned
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ..errors import FormatError

SUFFIX = ".sc-partial"
_RANDOM = 8  # tempfile's random part: 8 characters of [a-z0-9_]
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading, refused with :class:`FormatError` unless it is a
    regular file (opening never blocks: a FIFO is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FormatError(f"{path}: cannot open the {what} ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FormatError(f"{path}: the {what} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small(path: str | os.PathLike, what: str, limit: int) -> bytes:
    """The whole content of a small regular file (an index), refused with
    :class:`FormatError` past ``limit`` bytes instead of being read whole."""
    with open_regular(path, what) as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise FormatError(f"{path}: the {what} is over the {limit:,}-byte limit")
    return raw


def read_at(fh: BinaryIO, offset: int, out: Any, at: str) -> None:
    """Fill the writable, contiguous buffer ``out`` (an array) with the file's bytes from
    ``offset``, without moving ``fh``'s position; :class:`FormatError` if the file ends first
    (it shrank since it was opened)."""
    view = memoryview(out).cast("B")
    if os.preadv(fh.fileno(), [view], offset) != view.nbytes:
        raise FormatError(f"{at}: the file is shorter than when it was opened")


def check_unchanged(fh: BinaryIO, size: int, at: str) -> None:
    """:class:`FormatError` unless the open file still has ``size`` bytes: a mapped file that
    shrank would kill the process (SIGBUS) on the next access instead."""
    if os.fstat(fh.fileno()).st_size != size:
        raise FormatError(f"{at}: the file changed size since it was opened (truncated or "
                          "rewritten in place); reopen it")


def sibling(index: str | os.PathLike, file: Any, what: str = "shard") -> Path:
    """The path of ``file``, named by an index file, in the index's folder; :class:`FormatError`
    unless ``file`` is a plain file name (not empty, ``.``, ``..``, no ``/``, ``\\`` or NUL)
    whose real path (symlinks resolved) is in that folder. Whether it is a regular file is
    checked when it is opened (:func:`open_regular`)."""
    index = Path(index)
    if (not isinstance(file, str) or file in ("", ".", "..") or "\0" in file or "/" in file
            or "\\" in file):
        raise FormatError(f"{index}: {what} {str(file)[:80]!r} must be a file name in the "
                          "index's folder")
    folder = os.path.realpath(index.parent)
    real = os.path.realpath(index.parent / file)
    if os.path.dirname(real) != folder:
        raise FormatError(f"{index}: {what} {file} resolves to {real}, outside the index's "
                          "folder")
    return Path(real)


def _default_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0666 less the umask (mkstemp's 0600
    would surprise users who share their files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _prefix(target: Path) -> str:
    return f".{target.name}."


def _same_file(path: str, fd: int) -> bool:
    """True when ``path`` (not followed) is still the file open as ``fd``."""
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def leftovers(target: str | os.PathLike) -> list[Path]:
    """Temporaries of ``target`` in its folder (live writers' and dead writers' alike)."""
    target = Path(target)
    prefix = _prefix(target)
    found = []
    try:
        entries = list(os.scandir(target.parent or "."))
    except OSError:
        return []
    for e in entries:
        rest = e.name[len(prefix):-len(SUFFIX)]
        if (e.name.startswith(prefix) and e.name.endswith(SUFFIX) and len(rest) == _RANDOM
                and set(rest) <= _ALPHABET):
            found.append(Path(e.path))
    return found


def clean_leftovers(target: str | os.PathLike) -> int:
    """Remove the temporaries that dead writers of ``target`` left behind; returns how many.

    A temporary is removed only if it is a regular file of this user that no live writer holds
    locked. Symlinks, FIFOs and other users' files under such names are left alone."""
    if fcntl is None:  # pragma: no cover - Windows: no way to tell dead from live
        return 0
    removed = 0
    for path in leftovers(target):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # a symlink (ELOOP), vanished, not ours to read
            continue
        try:
            st = os.fstat(fd)
            if (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and _try_lock(fd)
                    and _same_file(str(path), fd)):
                os.unlink(path)
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file object to write ``target``'s new content to; on a clean exit it becomes
    ``target`` in one rename, after an exception nothing changes and no temporary remains.

    >>> with atomic_output("out.bin") as fh:  # doctest: +SKIP
    ...     fh.write(b"...")
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    clean_leftovers(target)
    for _ in range(8):
        fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=SUFFIX, dir=folder)
        # a concurrent clean_leftovers may have taken our fresh, not yet locked file: if the
        # lock fails or the name no longer is our file, start again with a new one
        if _try_lock(fd) and _same_file(tmp, fd):
            break
        os.close(fd)
    else:  # pragma: no cover - needs 8 lost races in a row
        raise OSError(f"{target}: could not create a temporary file beside it")
    try:
        os.fchmod(fd, _default_mode())
    except (OSError, AttributeError):  # pragma: no cover - filesystems without modes
        pass
    fh = os.fdopen(fd, "w+b")
    done = False
    try:
        yield fh
        fh.flush()
        if not _same_file(tmp, fd):  # someone replaced our temporary's name: never publish it
            raise OSError(f"{target}: the temporary file {tmp} was replaced while writing")
        os.replace(tmp, target)
        done = True
    finally:
        if not done and _same_file(tmp, fd):
            os.unlink(tmp)
        fh.close()
