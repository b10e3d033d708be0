"""The Python quickstart is run as a test, so the example never rots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


def test_quickstart(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        env={**os.environ, "NATS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dead letter after 3 deliveries: ValueError: salary is not a number" in result.stdout
    assert "payroll applied 4 of 5 changes" in result.stdout
    assert result.stdout.rstrip().endswith("quickstart OK")
