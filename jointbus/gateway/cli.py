"""``jointbus gateway ...``: run an agency's gateway, manage its systems' tokens, write its
OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import sys
from pathlib import Path

import click

from jointbus import context, ui
from jointbus.gateway.errors import GatewayError
from jointbus.gateway.tokens import SCOPES, Tokens
from jointbus.options import listen_address, loopback
from jointbus.streams import keystore

#: where the OpenAPI document is written in the repository (a test fails when it drifts)
OPENAPI_FILE = Path("docs") / "gateway-openapi.json"


def openapi_text() -> str:
    """The gateway's OpenAPI document as written to ``docs/``."""
    from jointbus.gateway.app import create_app

    return json.dumps(create_app().openapi(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def tokens_of(agency: str) -> Tokens:
    from jointbus.gateway.service import gateway_dir

    return Tokens(gateway_dir(context.settings(), agency) / "tokens.json")


def webhook_secret(path: Path | None, directory: Path) -> tuple[bytes, str]:
    """The webhook's HMAC secret and where it came from: ``--webhook-secret-file``, the
    ``JOINTBUS_WEBHOOK_SECRET`` variable, or one made once and kept in the gateway's folder."""
    from jointbus.streams.keystore import write_private

    if path is not None:
        return path.read_bytes().strip(), str(path)
    given = os.environ.get("JOINTBUS_WEBHOOK_SECRET")
    if given:
        return given.encode(), "JOINTBUS_WEBHOOK_SECRET"
    kept = directory / "webhook.secret"
    if not kept.exists():
        write_private(kept, secrets.token_urlsafe(32) + "\n")
    return kept.read_bytes().strip(), str(kept)


@click.group("gateway")
def gateway_group() -> None:
    """An agency's gateway: internal systems publish and read over plain HTTPS/JSON."""


@gateway_group.command("run")
@click.option("--as", "agency", required=True, help="the agency this gateway speaks for")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT to listen on")
@click.option("--webhook", "webhooks", multiple=True, help="POST each delivery to this URL (repeatable)")
@click.option("--webhook-secret-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--rate", type=click.FloatRange(0.1), default=50.0, show_default=True, help="requests/s per system"
)
@click.option("--burst", type=click.FloatRange(1), default=100.0, show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option(
    "--client-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="require client certificates signed by this CA (mutual TLS)",
)
def run_command(
    agency: str,
    listen: str,
    webhooks: tuple[str, ...],
    webhook_secret_file: Path | None,
    rate: float,
    burst: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
) -> None:
    """Serve the agency's gateway until SIGTERM: publish, inbox (pages, SSE, webhooks),
    receipts on acknowledgement, aggregates."""
    import uvicorn

    from jointbus.gateway.app import RateLimit, Runtime, create_app
    from jointbus.gateway.service import Gateway, gateway_dir
    from jointbus.gateway.webhook import Webhook

    cfg = context.settings()
    if agency not in keystore.load_registry(cfg.keystore_dir).agencies:
        raise GatewayError(
            f"{agency} is not a member agency of the local registry", reason="unknown_sender", status=400
        )
    if (tls_cert is None) != (tls_key is None) or (client_ca is not None and tls_cert is None):
        raise click.UsageError("--tls-cert and --tls-key go together; --client-ca needs them")
    host, port = listen_address(listen)
    if not loopback(host) and tls_cert is None:
        ui.err.print(
            f"[yellow]warning:[/] serving on {host} without TLS: tokens and events cross the network in clear"
        )
    directory = gateway_dir(cfg, agency)
    tokens = Tokens(directory / "tokens.json")
    if not tokens.listing():
        ui.err.print(f"no system has a token yet: `jointbus gateway token add NAME --as {agency}`")
    secret = webhook_secret(webhook_secret_file, directory) if webhooks else None
    scheme = "https" if tls_cert else "http"

    async def serve() -> None:
        sys.setswitchinterval(0.001)  # the store's commit thread hands its results back promptly
        gateway = Gateway(cfg, agency)  # its Kafka clients belong to this event loop
        rt = Runtime(gateway, tokens, RateLimit(rate, burst))
        if secret is not None:
            ui.err.print(f"webhooks signed with the secret in {secret[1]}")
            rt.background.extend(Webhook(gateway, url, secret[0]).run for url in webhooks)
        config = uvicorn.Config(
            create_app(rt),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            ssl_ca_certs=str(client_ca) if client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise GatewayError(
                    f"the gateway could not listen on {listen}", reason="not_listening", status=500
                )
            await asyncio.sleep(0.05)
        ui.err.print(f"gateway ready: {agency} at {scheme}://{host}:{port}")
        failed = asyncio.create_task(gateway.failed.wait())
        await asyncio.wait([task, failed], return_when=asyncio.FIRST_COMPLETED)
        if gateway.failed.is_set():  # serving a stale inbox helps nobody: stop, be restarted
            server.should_exit = True
            await task
            raise GatewayError(
                f"the inbox reader stopped ({type(gateway.failure).__name__}: {gateway.failure})",
                reason="inbox_failed",
                status=503,
                retriable=True,
            )
        failed.cancel()
        await task

    asyncio.run(serve())


@gateway_group.group("token")
def token_group() -> None:
    """Bearer tokens of the agency's internal systems (stored hashed)."""


@token_group.command("add")
@click.argument("name")
@click.option("--as", "agency", required=True, help="the agency whose gateway it is")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="what the system may do (repeatable; default: all of publish, inbox, read)",
)
def token_add(name: str, agency: str, scopes: tuple[str, ...]) -> None:
    """Create (or replace) NAME's token; it is printed once and only its hash is kept."""
    token = tokens_of(agency).add(name, scopes or SCOPES)
    ui.err.print(
        f"token for {name} at {agency}'s gateway (shown once; keep it in the system's secret store):"
    )
    click.echo(token)


@token_group.command("list")
@click.option("--as", "agency", required=True)
def token_list(agency: str) -> None:
    """The systems holding a token (never the tokens)."""
    rows = [(name, ", ".join(scopes), created) for name, scopes, created in tokens_of(agency).listing()]
    if not rows:
        ui.say(f"no tokens at {agency}'s gateway")
        return
    ui.table(f"systems of {agency}'s gateway", ["system", "scopes", "created"], rows)


@token_group.command("remove")
@click.argument("name")
@click.option("--as", "agency", required=True)
def token_remove(name: str, agency: str) -> None:
    """Revoke NAME's token at once (the gateway reads the file on every call)."""
    if not tokens_of(agency).remove(name):
        raise GatewayError(f"{name} has no token at {agency}'s gateway", reason="not_found", status=404)
    ui.say(f"token of {name} revoked")


@gateway_group.command("openapi")
@click.option("--write", "target", type=click.Path(path_type=Path, dir_okay=False), default=None)
def openapi_command(target: Path | None) -> None:
    """Print the gateway's OpenAPI document, or write it (``--write docs/gateway-openapi.json``)."""
    text = openapi_text()
    if target is None:
        click.echo(text, nl=False)
        return
    target.write_text(text)
    ui.say(f"wrote {target}")
