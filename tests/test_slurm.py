"""The SLURM profile against a real one-node SLURM (opt-in: it installs and starts daemons).

Set LNM_TEST_SLURM=1 to run it (CI does); it needs root and apt-get, and skips with the reason
where SLURM cannot be installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_SLURM_PATH

SCRIPT = Path(__file__).parent / "slurm" / "run_slurm_test.sh"


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("LNM_TEST_SLURM") != "1",
    reason="opt-in: set LNM_TEST_SLURM=1 (installs and starts slurm-wlm as root)",
)
def test_smoke_workflow_through_the_slurm_profile(tmp_path):
    # the real scontrol: without the session's stand-in (tests/conftest.py, NO_SLURM_PATH)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != NO_SLURM_PATH]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), *path])}
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "results")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == 77:
        pytest.skip(out.strip().splitlines()[-1])
    assert proc.returncode == 0, out[-6000:]
    assert "PASS:" in out
