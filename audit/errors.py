"""Errors of the audit log; a failed verification names the first bad index and why."""

from __future__ import annotations

from schemas.errors import JointbusError


class AuditError(JointbusError):
    """The audit log cannot do what was asked (no such event, no checkpoint yet, ...)."""

    reason = "audit"


class VerificationError(AuditError):
    """Verification failed: ``index`` is the first bad leaf, ``why`` says why."""

    reason = "audit_failed"

    def __init__(self, message: str, *, index: int | None, why: str) -> None:
        super().__init__(message, reason=why)
        self.index = index
        self.why = why


class InconsistentLogError(AuditError):
    """Signing would contradict an earlier checkpoint: the log refuses (a fork or truncation)."""

    reason = "inconsistent_log"
