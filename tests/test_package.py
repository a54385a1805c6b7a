"""The package as a user meets it: the docstring's example, and the installed console script."""

import doctest
import shutil
import subprocess

import numpy as np

import sparsecodec as sc


def test_package_docstring_example_runs():
    result = doctest.testmod(sc, raise_on_error=False, verbose=False)
    assert result.attempted >= 3 and result.failed == 0


def test_console_script_runs_as_installed(tmp_path):
    exe = shutil.which("sparsecodec")
    assert exe is not None, "pip install . puts a 'sparsecodec' command on the PATH"
    W = np.zeros((6, 4), np.float32)
    W[1, 2] = 0.5
    sc.save(tmp_path / "m.spc", {"w": sc.encode(W, format="sham")})
    out = subprocess.run([exe, "info", str(tmp_path / "m.spc")], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "1 tensors" in out.stdout and "sham" in out.stdout
    bad = subprocess.run([exe, "info", str(tmp_path / "missing.spc")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("sparsecodec: error:")
    assert "Traceback" not in bad.stderr


def _python(code: str, *args: str) -> str:
    import sys

    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_and_info_load_no_kernels(tmp_path):
    """`import sparsecodec` and `sparsecodec info` (the header only) import neither numba nor
    any format: that is what keeps them fast. A damaged payload does not stop info (verify
    finds it)."""
    W = np.zeros((6, 4), np.float32)
    W[1, 2] = 0.5
    sc.save(tmp_path / "m.spc", {"layer.0.attention.output.dense.weight":
                                 sc.encode(W, format="sham_ans"), "b": np.ones(3)})
    sc.save(tmp_path / "m.h5", {"w": sc.encode(W, format="grid")})
    raw = bytearray((tmp_path / "m.spc").read_bytes())
    raw[-40] ^= 0xFF
    (tmp_path / "bad.spc").write_bytes(bytes(raw))
    out = _python(
        "import sys, sparsecodec as sc\n"
        "from sparsecodec.cli import main\n"
        "assert sc.__version__ and 'numba' not in sys.modules\n"
        "for p in sys.argv[1:]: assert main(['info', p]) == 0\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('numba', 'sparsecodec.formats',"
        " 'sparsecodec.kernels')))\n"
        "print('loaded:', loaded)\n",
        str(tmp_path / "m.spc"), str(tmp_path / "bad.spc"), str(tmp_path / "m.h5"))
    assert "loaded: []" in out
    assert out.count("layer.0.attention.output.dense.weight  sham_ans") == 2
    import re

    assert re.search(r"^w {7}grid ", out, re.M) and re.search(r"^b +array ", out, re.M)
    from sparsecodec.cli import main

    assert main(["verify", str(tmp_path / "bad.spc")]) == 2


def test_lazy_package_keeps_its_names():
    """Every public name resolves, and sc.formats stays the function after the subpackage of
    the same name is imported (first or later)."""
    out = _python(
        "import sparsecodec as sc, sparsecodec.formats.grid\n"
        "from sparsecodec.options import BUILTIN_FORMATS\n"
        "assert sc.formats() == list(BUILTIN_FORMATS), sc.formats()\n"
        "assert all(getattr(sc, n) is not None for n in sc.__all__)\n"
        "import sparsecodec.formats.pq\n"
        "print(callable(sc.formats), sc.open.__name__, sc.Encoded.__name__)\n")
    assert out.split() == ["True", "open_file", "Encoded"]
    assert set(dir(sc)) >= set(sc.__all__)
    from sparsecodec.options import BUILTIN_FORMATS

    assert sc.formats() == list(BUILTIN_FORMATS)


def test_short_names_keep_both_ends():
    from sparsecodec.cli import name_width, short_name

    name = "encoder.layer.11.attention.output.LayerNorm.bias.of.a.very.long.model.name"
    assert short_name("fc1", 10) == "fc1"
    s = short_name(name, 40)
    assert len(s) == 40 and s.startswith("encoder.") and s.endswith("model.name") and "..." in s
    assert name_width(["a", "bb"]) == 6 and name_width([name]) == 60


def test_every_document_the_code_and_docs_point_to_exists():
    """Help texts, docstrings, the README and the docs name documents by path; each exists."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [*root.joinpath("sparsecodec").rglob("*.py"), root / "README.md",
             *root.joinpath("docs").glob("*.md")]
    named = {(m, t.relative_to(root)) for t in texts
             for m in re.findall(r"(?:docs|formats)/[a-z_]+\.md", t.read_text())}
    missing = sorted(str(p) for p in named if not (root / p[0]).is_file())
    assert named and missing == []
