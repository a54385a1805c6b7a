"""The release artefacts: a wheel and an sdist built from the repository's files, each
installed into a fresh virtual environment, carry the package data and run."""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _repo_copy(dest: Path) -> Path:
    """The files git tracks (what a clean clone has), copied to ``dest``."""
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())
    return dest


def _run(argv, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, (argv, out.stdout[-2000:], out.stderr[-2000:])
    return out.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist, built by the PEP 517 backend as ``python -m build --sdist`` would, and the
    wheel, built by pip from the same tree."""
    src = _repo_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-c", "import sys, setuptools.build_meta as b; "
          "b.build_sdist(sys.argv[1])", str(out)], cwd=src)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", str(out), str(src)])
    return next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


def test_artefacts_carry_the_package_data(dist):
    sdist, wheel = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    for want in ("sparsecodec/data/digits_mlp.npz", "sparsecodec/py.typed",
                 "sparsecodec/formats/grid.py", "sparsecodec/cli.py"):
        assert want in names, want
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)
    members = {m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m}
    for want in ("pyproject.toml", "README.md", "LICENSE", "sparsecodec/data/digits_mlp.npz",
                 "sparsecodec/py.typed"):
        assert want in members, want


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_artefact_runs(dist, kind, tmp_path):
    """Installed with pip into a fresh venv: the command runs, the shipped example model
    loads, and a small pack verifies. pip, setuptools and the dependencies come from this
    environment (a venv's own setuptools is the old one venv bundles, without bdist_wheel)."""
    art = dist[1] if kind == "wheel" else dist[0]
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
          "--force-reinstall", "-q", str(art)])
    where = _run([str(py), "-c", "import sparsecodec, sys; print(sparsecodec.__file__)"],
                 cwd=tmp_path)
    assert str(venv) in where  # the installed copy, not the checkout
    assert _run([str(venv / "bin" / "sparsecodec"), "--version"]).startswith("sparsecodec ")
    _run([str(py), "-c", "from sparsecodec.demo import example; t, x, y = example(); "
          "assert x.shape == (360, 64) and len(t) == 6"], cwd=tmp_path)
    np.savez(tmp_path / "m.npz", w=np.eye(8, dtype=np.float32), b=np.ones(8, np.float32))
    for argv in (["pack", "m.npz", "-o", "m.spc", "--format", "csr"], ["info", "m.spc"],
                 ["verify", "m.spc"]):
        _run([str(venv / "bin" / "sparsecodec"), *argv], cwd=tmp_path)
