"""The gateway's errors: a jointbus error with the HTTP status it is answered with."""

from __future__ import annotations

from jointbus.schemas.errors import JointbusError


class GatewayError(JointbusError):
    """A request the gateway refuses; ``status`` is its HTTP status, ``reason`` the stable code."""

    def __init__(
        self, message: str, *, reason: str, status: int, field: str | None = None, retriable: bool = False
    ) -> None:
        super().__init__(message, reason=reason)
        self.retriable = retriable
        self.status = status
        self.field = field


def not_found(what: str) -> GatewayError:
    """404 ``not_found`` for ``what``."""
    return GatewayError(f"{what} is not known to this gateway", reason="not_found", status=404)
