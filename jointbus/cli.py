"""The ``jointbus`` command line."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import click

from jointbus import context, ui
from schemas.errors import JointbusError
from schemas.ids import utcnow
from schemas.keys import new_federation
from streams import keystore
from streams.admin import provision_topics
from streams.broker import KAFKA_VERSION, fetch_jars
from streams.errors import BrokerError
from streams.logs import configure_logging


class JointbusGroup(click.Group):
    """A click group that turns jointbus errors into one readable line and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except JointbusError as exc:
            ui.fail(f"{exc.message} [{exc.reason}]")
            sys.exit(2)
        except KeyboardInterrupt:
            ui.fail("interrupted")
            sys.exit(130)


@click.group(cls=JointbusGroup)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default from settings)")
def cli(log_level: str | None) -> None:
    """jointbus: the signed event bus of the Sichuan–Chongqing supervision agencies."""
    configure_logging(log_level or context.settings().log_level)


# ----------------------------------------------------------------------------------- broker
@cli.group()
def broker() -> None:
    """Run the embedded single-node Kafka broker (KRaft) on loopback."""


port_opt = click.option("--port", type=int, default=None, help="client port (default 19092)")
dir_opt = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="broker data directory (default .jointbus/broker)",
)


@broker.command("fetch")
def broker_fetch() -> None:
    """Fetch the Kafka jars from Maven Central into the cache (once)."""
    ui.say(f"Kafka {KAFKA_VERSION} jars in {fetch_jars()}")


@broker.command("start")
@port_opt
@dir_opt
def broker_start(port: int | None, data_dir: Path | None) -> None:
    """Start the broker, wait until it serves, create the jointbus topics."""
    cfg = context.settings(broker_port=port)
    if not cfg.uses_local_broker:
        raise BrokerError(
            f"JOINTBUS_BOOTSTRAP points at {cfg.bootstrap}; no local broker is started",
            reason="config",
        )
    b = context.local_broker(cfg, port, data_dir)
    began = time.monotonic()
    with ui.out.status(f"starting Kafka {KAFKA_VERSION} in {b.data_dir} ..."):
        b.start()
        created = asyncio.run(provision_topics(cfg, b.bootstrap))
    ui.say(
        f"broker serving at {b.bootstrap} ({time.monotonic() - began:.1f}s; "
        f"{len(created)} topics created)"
    )


@broker.command("stop")
@port_opt
@dir_opt
def broker_stop(port: int | None, data_dir: Path | None) -> None:
    """Stop the broker (its data stays)."""
    b = context.local_broker(context.settings(), port, data_dir)
    ui.say("broker stopped" if b.stop() else f"no broker running in {b.data_dir}")


@broker.command("status")
@port_opt
@dir_opt
def broker_status(port: int | None, data_dir: Path | None) -> None:
    """Say whether the broker serves; exit status 1 when it does not."""
    b = context.local_broker(context.settings(), port, data_dir)
    serving, state = b.status()
    if serving and state is not None:
        ui.say(f"serving at 127.0.0.1:{state.port} (pid {state.pid}, data {b.data_dir})")
        return
    ui.say(f"not running (data {b.data_dir})")
    sys.exit(1)


# ------------------------------------------------------------------------------------ keys
@cli.group()
def keys() -> None:
    """Create and manage the federation's keys and public registry."""


@keys.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="keystore directory (default .jointbus/keys)",
)
@click.option("--force", is_flag=True, help="overwrite an existing keystore")
def keys_init(directory: Path | None, force: bool) -> None:
    """Create a development federation: registry.json and private/<member>.json (0600)."""
    directory = directory or context.settings().keystore_dir
    if (directory / keystore.REGISTRY_FILE).exists() and not force:
        raise JointbusError(
            f"{directory} already holds a registry; use --force to replace it", reason="exists"
        )
    registry, rings = new_federation(utcnow() - timedelta(days=1))
    for ring in rings.values():
        keystore.save_keyring(directory, ring)
    path = keystore.save_registry(directory, registry)
    ui.table(
        f"registry v{registry.version} written to {path}",
        ["member", "名称", "region", "keys"],
        [
            (m.id, m.name_zh, m.region, ", ".join(k.kid for k in registry.keys if k.owner == m.id))
            for m in registry.members
        ],
    )


# --------------------------------------------------------------------------------- schemas
@cli.group("schemas")
def schemas_group() -> None:
    """The wire contract for other languages: JSON Schema files and test vectors."""


@schemas_group.command("write")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("schemas/json"))
def schemas_write(directory: Path) -> None:
    """Regenerate the JSON Schema files from the models."""
    from schemas.jsonschema import documents, render

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.schema.json"):
        stale.unlink()
    docs = documents()
    for name, doc in docs.items():
        (directory / name).write_text(render(doc), encoding="utf-8")
    ui.say(f"{len(docs)} schema files written to {directory}")


@schemas_group.command("vectors")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("schemas/vectors/wire-v1.json")
)
def schemas_vectors(out: Path) -> None:
    """Regenerate the test-vector file (the sealed case changes: HPKE is randomized)."""
    import json

    from schemas.vectors import build

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    ui.say(f"test vectors written to {out}")


def main() -> None:
    """Entry point of the ``jointbus`` console script."""
    cli(prog_name="jointbus")
