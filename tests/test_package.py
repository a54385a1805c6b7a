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
