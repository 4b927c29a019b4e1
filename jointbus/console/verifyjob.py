"""The log page's verify button: `audit verify` of the live log, run in the background.

The job runs ``auditcli.verify_complete`` (the very code of ``jointbus audit verify``) on a
thread of its own with its own event loop, so the pages keep answering; its progress is
the number of audit records checked so far, read by the page while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from aiokafka.errors import KafkaError

from jointbus.audit.completeness import GRACE_MS
from jointbus.audit.errors import VerificationError
from jointbus.auditcli import failure_line, unwitnessed_line, verdict_lines, verify_complete
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.registry import Registry
from jointbus.streams.clients import classify
from jointbus.streams.settings import Settings

log = structlog.get_logger(__name__)

#: records younger than this may still wait for their decision (as `audit verify`)
GRACE_SECONDS = GRACE_MS / 1000


@dataclass
class Job:
    """One verification: where it is, and what it said."""

    number: int
    state: Literal["running", "passed", "failed"] = "running"
    done: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)
    reason: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0

    def end(self, state: Literal["passed", "failed"], *lines: str, reason: str | None = None) -> None:
        """The job is over: its verdict and what it said."""
        self.lines, self.reason, self.state = list(lines), reason, state

    def view(self) -> dict[str, Any]:
        """The job as the page polls it (JSON)."""
        return {
            "number": self.number,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "lines": self.lines,
            "reason": self.reason,
            "seconds": round(self.seconds, 1),
        }


class Verifications:
    """At most one verification at a time; the latest one's state."""

    def __init__(self, cfg: Settings, registry: Registry) -> None:
        self.cfg = cfg
        self.registry = registry
        self.latest: Job | None = None
        self._lock = threading.Lock()

    def start(self) -> Job:
        """Start a verification unless one is running; the running (or new) job."""
        with self._lock:
            if self.latest is not None and self.latest.state == "running":
                return self.latest
            job = Job(number=(self.latest.number + 1) if self.latest else 1)
            self.latest = job
        threading.Thread(target=self._run, args=(job,), name=f"verify-{job.number}", daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        began = time.monotonic()

        def meter(total: int) -> AbstractContextManager[Callable[[int], None]]:
            job.total = total

            def step(reached: int) -> None:
                job.done = reached

            @contextlib.contextmanager
            def metered() -> Iterator[Callable[[int], None]]:
                yield step
                job.done = job.total  # all read: what follows the last record is commit markers

            return metered()

        try:
            _, report, complete = asyncio.run(
                verify_complete(self.cfg, self.registry, GRACE_SECONDS, meter=meter)
            )
            seconds = time.monotonic() - began
            if report.witnessed is not None and not report.witnessed.enough:
                job.end("failed", unwitnessed_line(report.witnessed), reason="not_witnessed")
            else:
                job.end("passed", *verdict_lines(report, complete, GRACE_SECONDS, seconds))
        except VerificationError as exc:
            job.end("failed", failure_line(exc), reason=exc.why)
        except (JointbusError, KafkaError) as exc:
            error = exc if isinstance(exc, JointbusError) else classify(exc)
            job.end("failed", f"{error.message} [{error.reason}]", reason=error.reason)
        except Exception as exc:  # a job must end, whatever broke: say so, in its words
            log.exception("console.verify_failed")
            job.end("failed", f"verification stopped: {exc}", reason="internal_error")
        job.seconds = time.monotonic() - began
        log.info("console.verified", job=job.number, state=job.state, offset=job.done)
