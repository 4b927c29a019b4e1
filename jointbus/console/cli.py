"""``jointbus console``: the auditors' and coordinators' read-only web console."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import click
import structlog

from jointbus import context, ui
from jointbus.auditcli import registry_opt, trusted_registry
from jointbus.options import listen_address, loopback
from jointbus.schemas.errors import JointbusError
from jointbus.streams.topics import AUDIT_TOPIC

log = structlog.get_logger(__name__)


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a typed error saying why not (taken, no such host)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise JointbusError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", reason="address_in_use"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@click.command("console")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="host:port to serve on")
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    metavar="NAME[:PORT]",
    help="a further name browsers reach the console by (repeatable); the listen address, "
    "127.0.0.1, localhost and [::1] with its port are always allowed, any other Host gets 421",
)
@registry_opt
def console_command(listen: str, allowed: tuple[str, ...], registry_file: Path | None) -> None:
    """Serve the read-only web console of the audit log (figures, clue flow, deadlines,
    histories, checkpoints, proofs), as the auditor principal."""
    host, port = listen_address(listen)
    sock = bound_socket(host, port)  # a taken port is said first, before Kafka is asked
    try:
        asyncio.run(_serve(sock, host, port, registry_file, allowed))
    finally:
        sock.close()


async def _serve(
    sock: socket.socket, host: str, port: int, registry_file: Path | None, allowed: tuple[str, ...] = ()
) -> None:
    """Read the log as it is, then serve the console on ``sock`` while following the log."""
    import uvicorn

    from jointbus.console.app import allowed_hosts, create_app
    from jointbus.console.reading import catch_up
    from jointbus.console.state import LogState

    cfg = context.settings()
    registry = trusted_registry(cfg, registry_file)
    if not loopback(host):
        ui.say(f"[yellow]warning:[/] serving on {host}, not loopback: whoever reaches it reads figures")
    state = LogState(registry)
    await catch_up(state, cfg)
    app = create_app(cfg, registry, state, hosts=allowed_hosts(host, port, allowed))
    # live streams stay open: a stop waits for them at most 2 s
    config = uvicorn.Config(
        app, lifespan="on", timeout_graceful_shutdown=2, log_config=None, access_log=False
    )
    shown = f"[{host}]" if ":" in host else host
    ui.say(
        f"console at http://{shown}:{port}/ — {len(state.entries)} decisions read from {AUDIT_TOPIC}, "
        "following it (Ctrl-C stops)"
    )
    await uvicorn.Server(config).serve(sockets=[sock])
