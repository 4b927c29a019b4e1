"""``jointbus witness ...``: an agency's witness of the audit log (``audit.witness``).

``witness run --as <agency>`` (repeatable, or ``--all`` for a development federation in one
process) follows the checkpoints, cosigns what is consistent with what it cosigned before,
and tells every agency what it refuses; ``witness status`` shows what each witness holds.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import click

from jointbus import context, ui
from jointbus.audit.witness import Witness, WitnessRefusedError, WitnessState, run_witness
from jointbus.options import metrics_option
from jointbus.schemas.checkpoints import ORIGIN
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore, metrics
from jointbus.streams.registry_feed import follow
from jointbus.streams.sdk import Publisher, new_subject
from jointbus.streams.settings import Settings

#: what a refusal is called in a ``log.witness_refused`` event
PROBLEMS = {"rollback", "inconsistent", "bad_checkpoint_signature", "no_proof"}


def state_path(directory: Path, agency: str) -> Path:
    """Where ``agency``'s witness keeps its state (on the agency's side)."""
    return directory / f"{agency}.json"


def alert_payload(refusal: WitnessRefusedError) -> tuple[str, dict[str, Any]]:
    """The alert event a refusal becomes: its family and payload."""
    if refusal.reason == "equivocation" and refusal.against is not None:
        size = int(refusal.note.split("\n")[1])
        return "log.equivocation", {
            "origin": ORIGIN,
            "size": size,
            "checkpoints": [refusal.against, refusal.note],
        }
    payload: dict[str, Any] = {
        "problem": refusal.reason if refusal.reason in PROBLEMS else "inconsistent",
        "checkpoint": refusal.note[:2000],
        "detail": refusal.message[:4000],
    }
    if refusal.against is not None:
        payload["last_cosigned"] = refusal.against[:2000]
    return "log.witness_refused", payload


async def witness_agency(
    cfg: Settings,
    ring: Keyring,
    registry: Registry,
    directory: Path,
    stop: asyncio.Event,
    genesis: Registry,
) -> None:
    """Run one agency's witness until ``stop``; its alerts go out through its Publisher."""
    agency = ring.owner
    path = state_path(directory, agency)
    witness = Witness.of(ring, registry, WitnessState.load(path))
    kafka = context.kafka(cfg, agency)
    async with Publisher(agency, ring, genesis, cfg.bootstrap_servers, **kafka) as pub:

        async def alert(refusal: WitnessRefusedError) -> None:
            family, payload = alert_payload(refusal)
            others = [a for a in pub.registry.voters if a != agency]
            await pub.publish(family, new_subject("log"), others, payload)

        async def refresh() -> Registry:
            return await follow(genesis, cfg.bootstrap_servers, **kafka)

        await run_witness(witness, path, cfg.bootstrap_servers, stop, alert, refresh=refresh, **kafka)


@click.group("witness")
def witness_group() -> None:
    """Agencies witness the audit log: cosign consistent checkpoints, alert on splits."""


@witness_group.command("run")
@click.option("--as", "agencies", multiple=True, help="the agency whose witness runs (repeatable)")
@click.option("--all", "every", is_flag=True, help="every member agency with keys in the local keystore")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="where each witness keeps the last checkpoint it cosigned (default: <home>/witness)",
)
@metrics_option
def run_command(
    agencies: tuple[str, ...], every: bool, state_dir: Path | None, metrics_port: int | None
) -> None:
    """Run witnesses until SIGTERM: each cosigns checkpoints consistent with its own last
    one and publishes its cosignature; a refusal becomes an alert to every agency."""
    cfg = context.settings(metrics_port=metrics_port)
    metrics.serve(cfg.metrics_port, "witness", cfg.metrics_host)
    genesis = keystore.load_registry(cfg.keystore_dir)
    chosen = list(genesis.voters) if every else list(agencies)
    if not chosen:
        raise click.UsageError("name an agency with --as, or --all")
    rings = [keystore.load_keyring(cfg.keystore_dir, agency) for agency in chosen]
    directory = state_dir or cfg.home / "witness"

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        registry = await follow(genesis, cfg.bootstrap_servers, **context.kafka(cfg, chosen[0]))
        tasks = [
            asyncio.create_task(witness_agency(cfg, ring, registry, directory, stop, genesis))
            for ring in rings
        ]
        ui.err.print(f"witnesses ready: {', '.join(chosen)} (registry v{registry.version})")
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    asyncio.run(go())


@witness_group.command("status")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
def status_command(state_dir: Path | None) -> None:
    """What each witness holds: the last checkpoint it cosigned."""
    cfg = context.settings()
    directory = state_dir or cfg.home / "witness"
    rows = []
    for path in sorted(directory.glob("*.json")):
        state = WitnessState.load(path)
        rows.append((path.stem, state.size, state.root[:16] + "…" if state.root else "", len(state.history)))
    if not rows:
        ui.say(f"no witness has run with state in {directory}")
        return
    ui.table(f"witnesses ({directory})", ["agency", "cosigned size", "root", "sizes remembered"], rows)
