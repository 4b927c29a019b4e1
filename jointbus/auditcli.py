"""``jointbus audit ...``: run the log, verify, prove, check proofs, replay, export."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from jointbus import context, ui
from jointbus.audit.agent import AuditLog
from jointbus.audit.completeness import GRACE_MS, Completeness, OutboxRow, check_complete, outbox_records
from jointbus.audit.cosign import signature_lines, with_cosignatures
from jointbus.audit.cosigned import read_cosigned
from jointbus.audit.errors import AuditError, VerificationError
from jointbus.audit.export import export, read_checkpoints, read_cosignatures, read_records, read_registry
from jointbus.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from jointbus.audit.notes import open_checkpoint, parse_proof, proof_text
from jointbus.audit.parallel import feed_parallel
from jointbus.audit.verifier import Report, Verifier, check_registry_feed
from jointbus.audit.witnessing import Witnessed, cosignature_lines, witnessed
from jointbus.options import metrics_option, period_options
from jointbus.schemas.errors import ContractError
from jointbus.schemas.projections import Projection
from jointbus.schemas.records import record_of
from jointbus.schemas.registry import AUDIT, Registry
from jointbus.schemas.registry_chain import check_genesis
from jointbus.streams import keystore, metrics
from jointbus.streams.reader import end_offset, read_texts, read_topic
from jointbus.streams.security import AUDITOR
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, CHECKPOINT_TOPIC, REGISTRY_TOPIC, outbox
from jointbus.views import print_projection


def index_path(cfg: Settings) -> Path:
    """Where the derived audit index lives, in a folder only its owner can enter."""
    return keystore.private_dir(cfg.home / "audit") / "index.sqlite"


@contextlib.contextmanager
def signer_index(cfg: Settings) -> Iterator[Path]:
    """The audit service's index, held by one process: a second ``audit run`` or ``audit
    checkpoint`` on it would sign a checkpoint of its own, smaller view of the tree."""
    path = index_path(cfg)
    with path.with_suffix(".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AuditError(
                f"another audit service process holds {path}; stop it first", reason="index_in_use"
            ) from None
        yield path


def trusted_registry(cfg: Settings, given: Path | None, bundle: Path | None = None) -> Registry:
    """The registry to verify against: --registry, else the local keystore's, else the bundle's."""
    if given is not None:
        return Registry.model_validate_json(given.read_text(encoding="utf-8"))
    if (cfg.keystore_dir / keystore.REGISTRY_FILE).exists():
        registry = keystore.load_registry(cfg.keystore_dir)
        signed = keystore.load_genesis(cfg.keystore_dir)
        if signed is not None and signed.digest == registry.digest:
            check_genesis(registry, signed)  # the chain's anchor: agreed by every founding agency
        elif signed is not None:
            ui.say("[yellow]warning:[/] the keystore's registry is not the signed genesis (changed offline)")
        return registry
    if bundle is not None:
        ui.say("[yellow]warning:[/] no local registry; trusting the one inside the bundle")
        return read_registry(bundle)
    return keystore.load_registry(cfg.keystore_dir)


registry_opt = click.option(
    "--registry",
    "registry_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="trusted registry.json (default: the local keystore's)",
)


@click.group("audit")
def audit_group() -> None:
    """The append-only audit log: Merkle tree, signed checkpoints, proofs, replay."""


@audit_group.command("run")
@click.option("--every", default=200, show_default=True, help="sign a checkpoint every N leaves")
@click.option("--interval", default=5.0, show_default=True, help="... or every T seconds")
@metrics_option
def audit_run(every: int, interval: float, metrics_port: int | None) -> None:
    """Run the audit agent: index the audit topic, sign checkpoints (until SIGTERM)."""
    cfg = context.settings(metrics_port=metrics_port)
    metrics.serve(cfg.metrics_port, "audit", cfg.metrics_host)
    registry = keystore.load_registry(cfg.keystore_dir)
    keys = keystore.load_keyring(cfg.keystore_dir, AUDIT)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log = AuditLog(
            cfg.bootstrap_servers,
            index,
            registry,
            keys,
            every_records=every,
            every_seconds=interval,
            **context.kafka(cfg, AUDIT),
        )
        await log.start()
        ui.err.print(f"audit log ready: {log.index.size} leaves; following {AUDIT_TOPIC}")
        try:
            await log.run(stop)
        finally:
            await log.stop()

    with signer_index(cfg) as index:
        asyncio.run(go())


@audit_group.command("checkpoint")
def audit_checkpoint() -> None:
    """Catch the index up with the topic and sign one checkpoint now (audit service only)."""
    cfg = context.settings()
    registry = keystore.load_registry(cfg.keystore_dir)
    keys = keystore.load_keyring(cfg.keystore_dir, AUDIT)

    async def go() -> str:
        log = AuditLog(cfg.bootstrap_servers, index, registry, keys, **context.kafka(cfg, AUDIT))
        await log.start()
        try:
            return await log.checkpoint()
        finally:
            await log.stop()

    with signer_index(cfg) as index:
        ui.out.print(asyncio.run(go()), end="", markup=False)


@audit_group.command("verify")
@click.option(
    "--from-export",
    "bundle",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="verify an export bundle instead of the live topics",
)
@registry_opt
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=GRACE_MS / 1000,
    show_default=True,
    help="seconds an outbox record may wait for its decision before it counts as missing",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="processes that check signatures ahead of the in-order re-derivation",
)
def audit_verify(bundle: Path | None, registry_file: Path | None, grace: float, jobs: int) -> None:
    """Recompute the tree, re-check every signature, decision and checkpoint, and that every
    outbox record has exactly one decision (exit 1 on failure)."""
    cfg = context.settings()
    registry = trusted_registry(cfg, registry_file, bundle)
    began = time.monotonic()
    complete: Completeness | None = None
    try:
        if bundle is not None:
            verifier = Verifier(registry, read_checkpoints(bundle), cosigned_notes=read_cosignatures(bundle))
            total = max((offset + 1 for offset, _, _ in read_records(bundle)), default=0)
            with _Progress(total) as step:
                if jobs > 1:
                    asyncio.run(feed_parallel(verifier, read_records(bundle), jobs, step))
                else:
                    for offset, key, value in read_records(bundle):
                        verifier.feed(offset, key, value)
                        step(offset + 1)
            report = verifier.finish()
        else:
            verifier, report, complete = asyncio.run(verify_complete(cfg, registry, grace, jobs=jobs))
    except VerificationError as exc:
        ui.fail(failure_line(exc))
        raise SystemExit(1) from None
    seconds = time.monotonic() - began
    witnessed = report.witnessed
    if witnessed is not None and not witnessed.enough:
        ui.fail(unwitnessed_line(witnessed))
        raise SystemExit(1)
    for line in verdict_lines(report, complete, grace, seconds):
        ui.say(line)


def failure_line(exc: VerificationError) -> str:
    """The line `audit verify` fails with: where, what, the reason code."""
    where = f"at index {exc.index}" if exc.index is not None else "(outboxes, registry topic)"
    return f"audit log FAILED {where}: {exc.message} [{exc.why}]"


def unwitnessed_line(witnessed: Witnessed) -> str:
    """The line `audit verify` fails with when the checkpoints lack their cosignatures."""
    return f"audit log NOT WITNESSED: {witnessed.describe()} [not_witnessed]"


def verdict_lines(report: Report, complete: Completeness | None, grace: float, seconds: float) -> list[str]:
    """What `audit verify` says of a log that passed (the console's verify job says the same)."""
    d = report.decisions
    lines = [
        f"audit log OK: {report.leaves} leaves ({d['accepted']} accepted, {d['rejected']} rejected, "
        f"{d['emitted']} alerts; {report.repeats} repeated records skipped), "
        f"{report.checkpoints} signed checkpoints match, root {report.root.hex()[:16]}…, "
        f"{report.records / max(seconds, 1e-9):,.0f} records/s"
    ]
    if report.witnessed is not None:
        lines.append(f"witnesses: {report.witnessed.describe()}")
    lines.append(
        f"registry chain: v{report.registry_version} in force, re-derived from the genesis"
        + (f"; every record on jointbus.registry ({report.registry_records}) matches it" if complete else "")
    )
    if complete is None:
        lines.append("completeness against the outboxes: not checked (offline bundle; chains checked)")
    else:
        lines.append(
            f"complete: {complete.decided} of {complete.positions} outbox records decided exactly once"
            + (
                f"; {complete.pending} still on their way (younger than {grace:g} s)"
                if complete.pending
                else ""
            )
        )
    return lines


#: how verification reports progress: given the end offset of the records to check, a
#: context manager whose value is called with the offset reached after each record checked
#: (a bar on stderr, or the console's job); offsets, not counts: commit markers take offsets
Meter = Callable[[int], AbstractContextManager[Callable[[int], None]]]


async def verify_complete(
    cfg: Settings,
    registry: Registry,
    grace: float,
    replay: Projection | None = None,
    *,
    jobs: int = 1,
    meter: Meter | None = None,
) -> tuple[Verifier, Report, Completeness]:
    """Verify the live log, then check every outbox record has its decision: what `audit
    verify` runs (and the console's verify job, which brings its own ``meter``)."""
    kw = context.kafka(cfg, AUDITOR)
    now_ms = int(time.time() * 1000)
    outboxes = await outbox_records(
        cfg.bootstrap_servers, [outbox(a) for a in sorted(registry.agency_ids)], **kw
    )
    verifier, _ = await _verify_live(cfg, registry, replay, outboxes, jobs=jobs, meter=meter or _Progress)
    report = verifier.finish()
    feed = [v async for _, _, v in read_topic(cfg.bootstrap_servers, REGISTRY_TOPIC, **kw)]
    report.registry_records = check_registry_feed(verifier.ledger.versions, feed)
    complete = check_complete(verifier.decided, outboxes, now_ms=now_ms, grace_ms=int(grace * 1000))
    return verifier, report, complete


async def _verify_live(
    cfg: Settings,
    registry: Registry,
    replay: Projection | None = None,
    outboxes: Mapping[str, list[OutboxRow]] | None = None,
    *,
    jobs: int = 1,
    meter: Meter,
) -> tuple[Verifier, int]:
    kw = context.kafka(cfg, AUDITOR)
    notes = await read_texts(cfg.bootstrap_servers, CHECKPOINT_TOPIC, **kw)
    cosigned = await cosigned_notes(cfg, kw, registry)
    verifier = Verifier(registry, notes, replay=replay, outboxes=outboxes, cosigned_notes=cosigned)
    total = await end_offset(cfg.bootstrap_servers, AUDIT_TOPIC, **kw)
    with meter(total) as step:
        records = read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, **kw)
        if jobs > 1:
            await feed_parallel(verifier, records, jobs, step)
        else:
            async for offset, key, value in records:
                verifier.feed(offset, key, value)
                step(offset + 1)
    return verifier, total


async def cosigned_notes(cfg: Settings, kw: Mapping[str, Any], registry: Registry) -> list[str]:
    """Every cosigned checkpoint the registry's members' witnesses published, each cut to
    what its topic's witness vouches for (``audit.cosigned``; what is no such note is
    passed over)."""
    return (await read_cosigned(cfg.bootstrap_servers, registry.agencies, **kw)).texts


class _Progress:
    """A progress bar on stderr for long work (quiet for short logs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar = Progress(
            TextColumn("verifying"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=ui.err,
            transient=True,
            disable=total < 5000,
        )
        self.task = self.bar.add_task("verify", total=total)
        self.n = 0

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, reached: int) -> None:
        self.n += 1
        if self.n % 500 == 0:
            self.bar.update(self.task, completed=reached)


def reader_index_path(cfg: Settings) -> Path:
    """Where auditors' tools (``audit prove``, ``consistency``, the console's proofs) keep
    their own index: never the audit service's, whose size its checkpoints are signed at."""
    return keystore.private_dir(cfg.home / "audit") / "reader-index.sqlite"


@contextlib.asynccontextmanager
async def _reader_index(cfg: Settings, registry: Registry) -> AsyncIterator[AuditLog]:
    """The auditors' index, caught up with the topic (no keys needed), held by one user at a
    time: two proofs at once (two downloads, a download and ``audit prove``) take turns, so
    no writer's smaller view of the tree overwrites another's."""
    path = reader_index_path(cfg)
    with path.with_suffix(".lock").open("a") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)  # released when closed
        log = AuditLog(cfg.bootstrap_servers, path, registry, None, **context.kafka(cfg, AUDITOR))
        await log.start()
        try:
            yield log
        finally:
            await log.stop()


@audit_group.command("prove")
@click.argument("event_id")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write the proof here")
@registry_opt
def audit_prove(event_id: str, out: Path | None, registry_file: Path | None) -> None:
    """An inclusion proof (C2SP tlog-proof) of EVENT_ID's decision against the latest checkpoint."""
    cfg = context.settings()
    registry = trusted_registry(cfg, registry_file)

    text = asyncio.run(build_proof(cfg, registry, event_id))
    if out is None:
        ui.out.print(text, end="", markup=False, highlight=False)
    else:
        out.write_text(text, encoding="utf-8")
        ui.say(f"proof written to {out}")


async def build_proof(cfg: Settings, registry: Registry, event_id: str) -> str:
    """The C2SP tlog-proof of ``event_id``'s decision against the latest witnessed checkpoint
    that covers it, from the local index caught up with the topic (`audit prove`, and the
    console's proof downloads)."""
    async with _reader_index(cfg, registry) as log:
        leaves = log.index.leaves_of(event_id)
        if not leaves:
            raise AuditError(f"no audit record about event {event_id}", reason="not_found")
        latest = log.index.latest_checkpoint()
        index, offset = leaves[0]
        if latest is None or latest[0] <= index:
            raise AuditError(
                "that decision is not under a signed checkpoint yet; try again after the next checkpoint",
                reason="not_checkpointed",
            )
        size, note = await _witnessed_checkpoint(cfg, registry, log.index.checkpoints(), index)
        record = await _record_at(cfg, offset)
        return proof_text(index, log.index.inclusion(index, size), note, record)


async def _witnessed_checkpoint(
    cfg: Settings, registry: Registry, checkpoints: list[tuple[int, str]], index: int
) -> tuple[int, str]:
    """The checkpoint a proof of leaf ``index`` rests on, with its cosignatures: the largest
    of ``checkpoints`` (the index's, newest first) that covers the leaf and has as many as
    the policy asks (the latest, when none is asked); ``not_witnessed`` when none has them."""
    cosigned = await cosigned_notes(cfg, context.kafka(cfg, AUDITOR), registry)
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    best: Witnessed | None = None
    for size, note in checkpoints:
        if size <= index:
            break
        cp = open_checkpoint(note, public)
        found = witnessed(cp, cosignature_lines(cp, cosigned), registry)
        if found.enough:  # the proof carries only lines that verify: a forged one would fail it
            return cp.size, with_cosignatures(note, list(found.lines))
        best = best or found
    if best is None:
        raise AuditError("no signed checkpoint covers that decision yet", reason="not_checkpointed")
    raise best.refusal()


async def _record_at(cfg: Settings, offset: int) -> bytes:
    kw = context.kafka(cfg, AUDITOR)
    async for found, _, value in read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, offset, **kw):
        if found == offset:
            return value
        break
    raise AuditError(f"no audit record at offset {offset}", reason="not_found")


@audit_group.command("check-proof")
@click.argument("proof_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@registry_opt
def audit_check_proof(proof_file: Path, registry_file: Path | None) -> None:
    """Verify a proof offline: checkpoint signature, then the record's inclusion (exit 1 if not)."""
    cfg = context.settings()
    registry = trusted_registry(cfg, registry_file)
    proof = parse_proof(proof_file.read_text(encoding="utf-8"))
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    try:
        cp = open_checkpoint(proof.checkpoint_note, public)
    except AuditError as exc:
        ui.fail(f"proof REJECTED: {exc.message} [{exc.reason}]")
        raise SystemExit(1) from None
    if not verify_inclusion(proof.index, cp.size, leaf_hash(proof.record), proof.path, cp.root):
        ui.fail(f"proof REJECTED: record is not leaf {proof.index} of the checkpointed tree [bad_inclusion]")
        raise SystemExit(1)
    found = witnessed(cp, signature_lines(proof.checkpoint_note), registry)
    if not found.enough:
        ui.fail(f"proof REJECTED: {found.describe()} [not_witnessed]")
        raise SystemExit(1)
    try:
        record = record_of(proof.record)
    except ContractError as exc:
        ui.fail(f"proof REJECTED: its record is no audit record: {exc.message} [{exc.reason}]")
        raise SystemExit(1) from None
    event = record.event or {}
    ui.say(f"proof OK: leaf {proof.index} of {cp.size} under a checkpoint signed by the audit key")
    ui.say(f"witnesses: {found.describe()}")
    ui.table(
        "the proven decision",
        ["event", "type", "from", "to", "decision", "reason", "received"],
        [
            [
                record.event_id or "-",
                str(event.get("type", "-")),
                record.sender or "-",
                ", ".join(record.delivered_to) or "-",
                record.decision,
                record.reason or "-",
                record.received_at,
            ]
        ],
    )


@audit_group.command("consistency")
@click.argument("old_size", type=int)
@click.argument("new_size", type=int)
@registry_opt
def audit_consistency(old_size: int, new_size: int, registry_file: Path | None) -> None:
    """A consistency proof that the log of OLD_SIZE leaves is a prefix of NEW_SIZE, verified."""
    cfg = context.settings()
    registry = trusted_registry(cfg, registry_file)

    async def go() -> tuple[list[bytes], bytes, bytes]:
        async with _reader_index(cfg, registry) as log:
            return (
                log.index.consistency(old_size, new_size),
                log.index.root(old_size),
                log.index.root(new_size),
            )

    proof, old_root, new_root = asyncio.run(go())
    ok = verify_consistency(old_size, new_size, old_root, new_root, proof)
    ui.out.print(f"consistency {old_size} → {new_size}: {'verified' if ok else 'FAILED'}", markup=False)
    ui.out.print(f"old root {base64.b64encode(old_root).decode()}", markup=False)
    ui.out.print(f"new root {base64.b64encode(new_root).decode()}", markup=False)
    for p in proof:
        ui.out.print(base64.b64encode(p).decode(), markup=False)
    if not ok:
        raise SystemExit(1)


@audit_group.command("replay")
@period_options
@click.option(
    "--from-export",
    "bundle",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
)
@click.option(
    "--registry",
    "registry_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="registry.json whose member agencies are the rows (default: the local keystore's, "
    "else the bundle's)",
)
def audit_replay(
    since: str | None,
    until: str | None,
    as_json: bool,
    as_csv: bool,
    bundle: Path | None,
    registry_file: Path | None,
) -> None:
    """Rebuild the per-agency figures from the audit history alone (one row per member
    agency of the registry)."""
    from jointbus.schemas.ids import parse_time
    from jointbus.schemas.projections import apply
    from jointbus.views import in_period, load_projection

    cfg = context.settings()
    given = None if registry_file is None else Registry.model_validate_json(registry_file.read_text("utf-8"))
    if bundle is None:
        projection = asyncio.run(load_projection(cfg, until, given, since=since))
    else:
        local = cfg.keystore_dir / keystore.REGISTRY_FILE
        members = given or (
            keystore.load_registry(cfg.keystore_dir) if local.exists() else read_registry(bundle)
        )
        projection = Projection(members.agencies, until=until, since=since)
        start, end = (parse_time(since) if since else None), (parse_time(until) if until else None)
        for _, _, value in read_records(bundle):
            try:  # as `load_projection`: bytes that are not a record change nothing
                record = record_of(value)
            except ContractError:
                continue
            inside = in_period(record, start, end)
            if inside:
                apply(projection, record)
    title = "replay" + (f" from {since}" if since else "") + (f" until {until}" if until else "")
    print_projection(projection, as_json=as_json, as_csv=as_csv, title=title)


@audit_group.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def audit_export(directory: Path) -> None:
    """Write a self-contained bundle (records, checkpoints, registry) for offline verify."""
    cfg = context.settings()
    registry = keystore.load_registry(cfg.keystore_dir)
    kw = context.kafka(cfg, AUDITOR)
    total = asyncio.run(end_offset(cfg.bootstrap_servers, AUDIT_TOPIC, **kw))
    with Progress(console=ui.err, transient=True, disable=total < 5000) as bar:
        task = bar.add_task("exporting", total=total)
        manifest = asyncio.run(
            export(cfg.bootstrap_servers, registry, directory, lambda n: bar.update(task, completed=n), **kw)
        )
    ui.say(f"exported {manifest['records']} records and {manifest['checkpoints']} checkpoints to {directory}")
    ui.say(json.dumps(manifest))
