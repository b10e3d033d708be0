#!/usr/bin/env python3
"""The employee-sync story across languages (`make demo`).

Starts its own nats-server, then runs the services of a small HR/payroll
company, each in its own language and process:

  HR (Python)          registers the `employee` schema, publishes every change
  payroll (Node)       consumer group: salaries in euros, in order per employee
  scheduling (Rust)    consumer group: departments for the rota, in order
  reporting (Swift)    a new group that replays the whole history

and prints a short account. Commands come from the environment (see
scripts/demo.sh): HR_CMD, PAYROLL_CMD, SCHEDULING_CMD, REPORTING_CMD.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

EMPLOYEES = 25
CHANGES = EMPLOYEES * 4  # what HR publishes, plus one change payroll cannot convert


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One service process; its lines are printed with its name in front."""

    def __init__(self, label: str, command: str, env: Dict[str, str], *args: str) -> None:
        self.label = label
        self.result: Dict[str, Any] = {}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            shlex.split(command) + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            line = line.rstrip()
            if line.startswith("RESULT "):
                self.result = json.loads(line[len("RESULT "):])
            elif line:
                print(f"  {self.label:<20} {line}", flush=True)

    def wait(self, timeout: float = 120) -> Dict[str, Any]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SystemExit(f"{self.label} did not finish within {timeout:.0f} s")
        self.reader.join(5)
        if code != 0 or not self.result:
            raise SystemExit(f"{self.label} failed (exit {code})")
        self.result["wall"] = time.monotonic() - self.started
        return self.result


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="jetstation-demo-"))
    port = free_port()
    server = subprocess.Popen(
        [os.environ["NATS_SERVER_BIN"], "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(work / "store")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("nats-server did not start")
                time.sleep(0.05)  # the server is still starting
        env = {"NATS_URL": f"nats://127.0.0.1:{port}", "EMPLOYEES": str(EMPLOYEES)}
        print(f"jetstation demo: employee sync across languages, on a nats-server at {env['NATS_URL']}\n")
        started = time.monotonic()

        print("1. HR publishes; then the payroll and scheduling groups consume, side by side")
        hr = Service("HR (Python)", os.environ["HR_CMD"], env)
        hr_result = hr.wait()
        # The groups join once the station exists (HR declares it).
        payroll = Service("payroll (Node)", os.environ["PAYROLL_CMD"], {**env, "EXPECTED": str(CHANGES)})
        scheduling = Service("scheduling (Rust)", os.environ["SCHEDULING_CMD"], {**env, "EXPECTED": str(CHANGES + 1)})
        payroll_result, scheduling_result = payroll.wait(), scheduling.wait()

        print("\n2. Payroll learns the XTS rate and replays its dead letter")
        fix = Service("payroll (Node)", os.environ["PAYROLL_CMD"], {**env, "EXPECTED": "1"}, "--replay")
        fix_result = fix.wait()

        print("\n3. A new reporting group replays the whole history")
        reporting = Service("reporting (Swift)", os.environ["REPORTING_CMD"], {**env, "EXPECTED": str(CHANGES + 2)})
        reporting_result = reporting.wait()
        total = time.monotonic() - started

        ok = (
            payroll_result["processed"] == CHANGES
            and payroll_result["outOfOrder"] == 0
            and payroll_result["deadLetters"] == 1
            and scheduling_result["handled"] == CHANGES + 1
            and scheduling_result["outOfOrder"] == 0
            and fix_result["processed"] == 1
            and reporting_result["replayed"] == CHANGES + 2
            and reporting_result["employees"] == EMPLOYEES
            and "salary" in hr_result["refused"]
        )
        print("\nAccount")
        print(f"  HR (Python)        published {hr_result['sent'] - 1} changes for {hr_result['employees']} employees "
              f"in {hr_result['seconds'] * 1000:.0f} ms, then e-7 v5 (each checked against the JSON Schema before sending)")
        print(f"                     refused 1 malformed change before sending: {hr_result['refused']}")
        print(f"  payroll (Node)     {payroll_result['processed']} changes in order per employee "
              f"({payroll_result['outOfOrder']} out of order); e-7 v5 failed {payroll_result['failures']} times "
              f"({', '.join(payroll_result['reasons'])}) and went to the dead-letter station")
        print(f"  scheduling (Rust)  {scheduling_result['handled']} changes in order per employee "
              f"({scheduling_result['outOfOrder']} out of order) in {scheduling_result['seconds']:.2f} s")
        print(f"  the fix            payroll replayed 1 dead letter and processed it in {fix_result['wall']:.2f} s")
        print(f"  reporting (Swift)  replayed the whole history: {reporting_result['replayed']} messages "
              f"({CHANGES + 1} changes + 1 replay), {reporting_result['employees']} employees, "
              f"{reporting_result['departments']} departments, in {reporting_result['seconds']:.2f} s")
        print(f"  total              {total:.1f} s")
        print("\ndemo OK" if ok else "\ndemo FAILED: an account above is not what it should be")
        # The line scripts/test-summary.sh counts when `make test` runs the demo.
        print(f"demo: {1 if ok else 0} passed, {0 if ok else 1} failed in {total:.1f}s")
        return 0 if ok else 1
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
