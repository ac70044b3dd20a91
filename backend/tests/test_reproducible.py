"""Two builds of the same source must be byte-identical (PEFT_TEST_REPRO=1; slow:
two PyInstaller runs). The work is done by check_reproducible.sh."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("check_reproducible.sh")


@pytest.mark.skipif(os.environ.get("PEFT_TEST_REPRO") != "1", reason="set PEFT_TEST_REPRO=1 to build twice")
def test_core_bundle_is_reproducible():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "byte-identical across two builds" in proc.stderr
