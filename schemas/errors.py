"""One exception hierarchy for everything jointbus rejects, each with a stable reason code.

Reason codes are part of the wire contract: they appear in audit records and in the
rejection notices senders receive, so they never change meaning once published.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Stable reason codes for rejected input."""

    SCHEMA = "schema"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_SENDER = "unknown_sender"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    KEY_REVOKED = "key_revoked"
    KEY_EXPIRED = "key_expired"
    NOT_AUTHORIZED = "not_authorized"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    DUPLICATE_RECIPIENT = "duplicate_recipient"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    CLOCK_SKEW = "clock_skew"
    UNTRUSTED_TIME = "untrusted_time"
    NOT_SEALED = "not_sealed"
    NOT_A_RECIPIENT = "not_a_recipient"
    SEAL_BROKEN = "seal_broken"
    BAD_TRANSITION = "bad_transition"
    DUPLICATE = "duplicate"
    TOO_MANY_OPEN = "too_many_open"
    INTERNAL = "internal_error"


class JointbusError(Exception):
    """Root of every jointbus error: a readable message, a reason code, and retriability.

    ``retriable`` tells a caller whether the same call may succeed later (a broker not yet
    up) or never will (a forged signature).
    """

    reason: str = "error"
    retriable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class ContractError(JointbusError):
    """An event or message breaks the wire contract; it is rejected, never retried."""


class SchemaError(ContractError):
    """Not a well-formed envelope or payload (also: unknown type, too large, unsealed)."""

    reason = Reason.SCHEMA


class AuthenticityError(ContractError):
    """The event cannot be proven to come from its claimed sender, now."""


class AuthorizationError(ContractError):
    """The sender is genuine but may not send this event to these recipients."""


class SealError(ContractError):
    """A sealed payload cannot be opened by this reader."""


class LimitError(AuthorizationError):
    """The sender already holds as many obligations open on a recipient as the policy
    allows: a flood is refused before it charges the recipient with anything."""

    reason = Reason.TOO_MANY_OPEN


class LifecycleError(ContractError):
    """The event is authentic and authorized but not allowed in the aggregate's state."""

    reason = Reason.BAD_TRANSITION


_CLASS_OF: dict[Reason, type[ContractError]] = {
    Reason.SCHEMA: SchemaError,
    Reason.UNKNOWN_TYPE: SchemaError,
    Reason.TOO_LARGE: SchemaError,
    Reason.TOO_DEEP: SchemaError,
    Reason.NOT_SEALED: SchemaError,
    Reason.UNKNOWN_SENDER: AuthenticityError,
    Reason.UNKNOWN_KEY: AuthenticityError,
    Reason.BAD_SIGNATURE: AuthenticityError,
    Reason.KEY_REVOKED: AuthenticityError,
    Reason.KEY_EXPIRED: AuthenticityError,
    Reason.CLOCK_SKEW: AuthenticityError,
    Reason.UNTRUSTED_TIME: AuthenticityError,
    Reason.NOT_AUTHORIZED: AuthorizationError,
    Reason.UNKNOWN_RECIPIENT: AuthorizationError,
    Reason.DUPLICATE_RECIPIENT: AuthorizationError,
    Reason.NOT_A_RECIPIENT: SealError,
    Reason.SEAL_BROKEN: SealError,
    Reason.BAD_TRANSITION: LifecycleError,
    Reason.DUPLICATE: ContractError,
    Reason.TOO_MANY_OPEN: LimitError,
    Reason.INTERNAL: ContractError,
}


def rejection(reason: Reason, message: str) -> ContractError:
    """Build the exception class that goes with ``reason``."""
    return _CLASS_OF[reason](message, reason=reason)
