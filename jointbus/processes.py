"""Child processes the demo, the benchmarks and the tests run: a real `jointbus worker`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Self

from jointbus.schemas.errors import JointbusError

#: marks of the log lines a failing test shows: warnings and worse, from faust, aiokafka
#: (plain text) or jointbus (JSON)
NOTABLE = ("WARNING", "ERROR", "CRITICAL", '"level": "warning"', '"level": "error"', '"level": "critical"')


class JointbusProcess:
    """A long-running `jointbus ...` command as a child process with its own log file."""

    args: tuple[str, ...] = ()
    ready_mark = ""

    def __init__(self, home: Path, bootstrap: str, **env: str) -> None:
        self.home = home.resolve()
        self.bootstrap = bootstrap
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "process.log"

    def start(self, timeout: float = 120.0) -> Self:
        """Start and wait until the process prints its ready mark."""
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_mark in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise JointbusError(
                    f"`jointbus {' '.join(self.args)}` exited; see {self.log}", reason="process_failed"
                )
            time.sleep(0.05)  # the ready mark is a log line: cheap to look for often
        self.kill()
        raise JointbusError(
            f"`jointbus {' '.join(self.args)}` did not become ready; see {self.log}", reason="process_failed"
        )

    def launch(self) -> Self:
        """Start without waiting for the ready mark (e.g. while the broker is away)."""
        env = {
            **os.environ,
            "JOINTBUS_HOME": str(self.home),
            "JOINTBUS_BOOTSTRAP": self.bootstrap,
            **self.env,
        }
        self.log = self.home / f"{self.args[0]}-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jointbus", *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        return self

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

    def story(self, lines: int = 25) -> str:
        """How the process fared, for a failing test's message: its exit status and the last
        ``lines`` warnings and errors of its log (the connection noise of a broker that is
        away left out, the ``jointbus`` lines kept whole)."""
        status = (
            "running" if self.proc is None or self.proc.poll() is None else f"exited {self.proc.returncode}"
        )
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            text = []
        noise = ("Unable connect", "NodeNotReady", "Connect call failed", "Failed fetch")
        notable = [
            line[:300]
            for line in text
            if any(mark in line for mark in NOTABLE) and not any(n in line for n in noise)
        ]
        return "\n".join([f"`jointbus {' '.join(self.args)}` ({status}), log {self.log}:", *notable[-lines:]])

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


class WorkerProcess(JointbusProcess):
    """`jointbus worker`: the router and deadline agents (ready once it leads and routes)."""

    args = ("worker",)
    ready_mark = "Worker]: Ready"

    def signal(self, signum: int) -> None:
        """Send ``signum`` (e.g. SIGSTOP, SIGCONT) to the worker."""
        assert self.proc is not None
        self.proc.send_signal(signum)


class StandbyWorkerProcess(WorkerProcess):
    """`jointbus worker` started while another leads: ready once it stands by."""

    ready_mark = "standing by"


class AuditProcess(JointbusProcess):
    """`jointbus audit run`: the audit agent (checkpoints every 50 leaves or second here)."""

    args = ("audit", "run", "--every", "50", "--interval", "1")
    ready_mark = "audit log ready"


class WitnessProcess(JointbusProcess):
    """``jointbus witness run --all``: every agency's witness in one process."""

    args = ("witness", "run", "--all")
    ready_mark = "witnesses ready"


class GatewayProcess(JointbusProcess):
    """``jointbus gateway run --as <agency> --listen 127.0.0.1:<port>``: one agency's gateway."""

    ready_mark = "gateway ready"

    def __init__(self, home: Path, bootstrap: str, agency: str, port: int, *extra: str, **env: str) -> None:
        super().__init__(home, bootstrap, **env)
        self.args = ("gateway", "run", "--as", agency, "--listen", f"127.0.0.1:{port}", *extra)
        self.url = f"http://127.0.0.1:{port}"
