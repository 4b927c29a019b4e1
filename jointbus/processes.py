"""Child processes the demo, the benchmarks and the tests run: a real `jointbus worker`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from schemas.errors import JointbusError

READY_MARK = "Worker]: Ready"


class WorkerProcess:
    """`jointbus worker` as a child process with its own JOINTBUS_HOME and log file."""

    def __init__(self, home: Path, bootstrap: str, **env: str) -> None:
        self.home = home
        self.bootstrap = bootstrap
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "worker.log"

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        """Start and wait until faust says the worker is ready."""
        env = {
            **os.environ,
            "JOINTBUS_HOME": str(self.home),
            "JOINTBUS_BOOTSTRAP": self.bootstrap,
            **self.env,
        }
        self.log = self.home / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jointbus", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_MARK in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise JointbusError(f"the worker exited; see {self.log}", reason="worker_failed")
            time.sleep(0.2)
        self.kill()
        raise JointbusError(f"the worker did not become ready; see {self.log}", reason="worker_failed")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        """The worker's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
