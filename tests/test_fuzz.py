"""Brief runs of the atheris targets (tests/fuzz), only when SPARSECODEC_FUZZ=1 and atheris is
installed: fuzzing is for a bounded, separate run, not for every CI run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = Path(__file__).resolve().parent / "fuzz" / "fuzz_targets.py"
pytestmark = pytest.mark.skipif(os.environ.get("SPARSECODEC_FUZZ") != "1",
                                reason="set SPARSECODEC_FUZZ=1 to fuzz")


LIBHDF5_HANG = pytest.mark.xfail(reason="libhdf5 can loop forever on a damaged file (found by "
                                        "this target; docs/container.md)", strict=False)


@pytest.mark.parametrize("target", ["container", "components",
                                    pytest.param("hdf5", marks=LIBHDF5_HANG), "index",
                                    "safetensors", "npz"])
def test_fuzz_target_finds_nothing(target, tmp_path):
    pytest.importorskip("atheris")
    seconds = os.environ.get("SPARSECODEC_FUZZ_SECONDS", "30")
    out = subprocess.run([sys.executable, str(TARGETS), target, f"-max_total_time={seconds}",
                          "-timeout=30", "-rss_limit_mb=4096", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Done" in out.stderr
