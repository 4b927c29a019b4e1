"""Command-line options shared by several commands."""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from jointbus.schemas.errors import JointbusError

PERIOD = (
    click.option("--since", default=None, help="only decisions received from this time (RFC 3339)"),
    click.option("--until", default=None, help="only decisions received up to this time (RFC 3339)"),
    click.option("--json", "as_json", is_flag=True, help="JSON lines: one per agency, then the totals"),
    click.option("--csv", "as_csv", is_flag=True, help="a CSV sheet: agencies, then the totals"),
)


def period_options(command: Any) -> Any:
    """The period and output options of the figures' commands (status, audit replay)."""
    for option in reversed(PERIOD):
        command = option(command)
    return command


#: ``--metrics-port`` of the long-running commands (worker, audit run, witness run)
metrics_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="serve Prometheus metrics on this port (loopback unless JOINTBUS_METRICS_HOST says otherwise)",
)


def listen_address(text: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) as a pair; a typed error when it is not one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise JointbusError(f"--listen wants host:port, not {text!r}", reason="bad_address")
    return host, int(port)


def loopback(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
