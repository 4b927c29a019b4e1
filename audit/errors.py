"""Errors of the audit log; a failed verification names the first bad index and why."""

from __future__ import annotations

from enum import StrEnum

from jointbus.schemas.errors import JointbusError


class AuditFailure(StrEnum):
    """Why a verification failed: stable codes, printed in brackets by the CLI."""

    MISSING_RECORD = "missing_record"
    REORDERED_RECORD = "reordered_record"
    NOT_A_RECORD = "not_a_record"
    POSITION_MISMATCH = "position_mismatch"
    DECISION_MISMATCH = "decision_mismatch"
    BAD_ROUTER_EVENT = "bad_router_event"
    MISSING_DECISION = "missing_decision"
    DOUBLE_DECISION = "double_decision"
    UNTRUSTED_TIME = "untrusted_time"
    FORGED_CHECKPOINT = "forged_checkpoint"
    FORK = "fork"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    TRUNCATED = "truncated"
    REGISTRY_FORK = "registry_fork"


class AuditError(JointbusError):
    """The audit log cannot do what was asked (no such event, no checkpoint yet, ...)."""

    reason = "audit"


class VerificationError(AuditError):
    """Verification failed: ``index`` is the first bad leaf, ``why`` says why."""

    reason = "audit_failed"

    def __init__(self, message: str, *, index: int | None, why: AuditFailure) -> None:
        super().__init__(message, reason=why)
        self.index = index
        self.why = why


class InconsistentLogError(AuditError):
    """Signing would contradict an earlier checkpoint: the log refuses (a fork or truncation)."""

    reason = "inconsistent_log"
