"""``make demo``: the main job on the embedded broker.

Starts the broker and a worker, creates a development federation, and plays the story
(``jointbus.story``) and the attacks (``jointbus.attacks``) through the federation harness
(``jointbus.federation``); then waits until every outbox record is decided, verifies the
audit log (completeness included) and checks that replaying it reproduces what the
agencies' own inboxes saw."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import timedelta

from rich.progress import Progress

from jointbus import ui
from jointbus.attacks import play_attacks
from jointbus.context import local_broker
from jointbus.federation import ACK_DEADLINE, Federation
from jointbus.processes import AuditProcess, GatewayProcess, WitnessProcess, WorkerProcess
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.projections import Projection
from jointbus.schemas.registry import Registry
from jointbus.schemas.registry_chain import sign_genesis
from jointbus.story import play_clues, play_governance, play_joint_check, play_rectifications
from jointbus.streams import keystore
from jointbus.streams.broker import LocalBroker, free_port
from jointbus.streams.provision import provision
from jointbus.streams.reader import read_texts, read_topic
from jointbus.streams.security import ADMIN, ensure_credentials, kafka_kwargs
from jointbus.streams.settings import Settings
from jointbus.views import print_projection

#: the agency that plays its part over HTTP through its own gateway, as an agency whose
#: case system speaks neither Kafka nor Ed25519 would
GATEWAY_AGENCY = "cq-rongchang"
#: the demo federation trusts an audit checkpoint once 5 of its 8 agencies' witnesses cosigned it
WITNESS_QUORUM = 5


# ------------------------------------------------------------------------------ plumbing
def reset_demo_state(cfg: Settings, broker: LocalBroker) -> None:
    """A demo starts from nothing: stop its broker, delete its data, keys and worker state."""
    broker.stop()
    for part in ("broker", "keys", "worker", "inbox", "audit", "witness", "gateway"):
        shutil.rmtree(cfg.home / part, ignore_errors=True)


def start_worker(cfg: Settings) -> WorkerProcess:
    """`jointbus worker` in the background with the demo's deadlines; waits until ready."""
    return WorkerProcess(
        cfg.home,
        cfg.bootstrap_servers,
        JOINTBUS_ACK_DEADLINE_SECONDS=str(ACK_DEADLINE),
        JOINTBUS_DEADLINE_SCAN_SECONDS="1",
        JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol,
    ).start()


def start_gateway(cfg: Settings) -> tuple[GatewayProcess, str]:
    """``GATEWAY_AGENCY``'s gateway on a free loopback port, and a token of its case system."""
    from jointbus.gateway.service import gateway_dir
    from jointbus.gateway.tokens import Tokens

    token = Tokens(gateway_dir(cfg, GATEWAY_AGENCY) / "tokens.json").add("demo-case-system")
    process = GatewayProcess(
        cfg.home,
        cfg.bootstrap_servers,
        GATEWAY_AGENCY,
        free_port(),
        JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol,
        JOINTBUS_ACK_DEADLINE_SECONDS=str(ACK_DEADLINE),  # its aggregate views use the router's rules
    ).start()
    return process, token


async def scenario(
    cfg: Settings, registry: Registry, rings: dict[str, Keyring], gateways: dict[str, tuple[str, str]]
) -> Federation:
    """Play the whole story; returns the federation with what it expected. The agencies in
    ``gateways`` (agency → (url, token)) play their part over HTTP through their gateway."""
    acts = [play_governance, play_clues, play_joint_check, play_rectifications, play_attacks]
    async with Federation(cfg, registry, rings, gateways) as fed:
        with Progress(console=ui.out, transient=False) as bar:
            task = bar.add_task("scenario", total=36)

            def progress(what: str) -> None:
                bar.update(task, advance=1, description=what[:60])
                bar.console.print(f"  {what}")

            # the acts run concurrently, as the agencies would
            await asyncio.gather(*(act(fed, progress) for act in acts))
            bar.update(task, completed=36, description="scenario complete")
        await asyncio.sleep(1.0)  # let the last receipts be routed
    return fed


async def all_decided(cfg: Settings, registry: Registry, within: float = 60.0) -> int:
    """Wait (bounded) until every outbox record has its decision in the audit log (the last
    receipts are still being routed when the scenario ends); returns the records decided."""
    from jointbus.audit.completeness import outbox_records
    from jointbus.streams.security import AUDITOR
    from jointbus.streams.topics import AUDIT_TOPIC, outbox

    kw = kafka_kwargs(cfg, AUDITOR)
    deadline = time.monotonic() + within
    while True:
        outboxes = await outbox_records(
            cfg.bootstrap_servers, [outbox(a) for a in sorted(registry.agency_ids)], **kw
        )
        wanted = {f"{stream}:{offset}" for stream, rows in outboxes.items() for offset, *_ in rows}
        decided = {
            key.decode() async for _, key, _ in read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, **kw) if key
        }
        if wanted <= decided:
            return len(wanted)
        if time.monotonic() > deadline:
            raise JointbusError(
                f"{len(wanted - decided)} outbox records still undecided after {within:.0f} s",
                reason="demo_failed",
            )
        await asyncio.sleep(0.5)


async def all_witnessed(cfg: Settings, registry: Registry, within: float = 60.0) -> str:
    """Wait (bounded) until every agency's witness cosigned the final checkpoint; a line
    naming them. Fails when fewer than the policy asks have after ``within`` seconds."""
    from jointbus.audit.cosigned import read_cosigned
    from jointbus.audit.witnessing import cosignature_lines, witnessed
    from jointbus.schemas.checkpoints import open_checkpoint
    from jointbus.schemas.registry import AUDIT
    from jointbus.streams.security import AUDITOR
    from jointbus.streams.topics import CHECKPOINT_TOPIC

    kw = kafka_kwargs(cfg, AUDITOR)
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    notes = await read_texts(cfg.bootstrap_servers, CHECKPOINT_TOPIC, **kw)
    latest = max((open_checkpoint(n, public) for n in notes), key=lambda cp: cp.size)
    deadline = time.monotonic() + within
    while True:
        cosigned = (await read_cosigned(cfg.bootstrap_servers, registry.agencies, **kw)).texts
        found = witnessed(latest, cosignature_lines(latest, cosigned), registry)
        if len(found.agencies) == found.witnesses:
            return f"witnesses: {found.describe()}"
        if time.monotonic() > deadline:
            if found.enough:
                return f"witnesses (some late): {found.describe()}"
            raise found.refusal()
        await asyncio.sleep(0.3)


def verify_and_replay(cfg: Settings, registry: Registry) -> tuple[str, Projection]:
    """`audit verify` (with completeness) and `audit replay` of the live log, in-process."""
    from jointbus.auditcli import verify_complete

    replay = Projection(registry.agencies)
    _, report, complete = asyncio.run(verify_complete(cfg, registry, 0.0, replay))
    if report.witnessed is not None and not report.witnessed.enough:
        raise report.witnessed.refusal()
    d = report.decisions
    return (
        f"audit verify: OK — {report.leaves} leaves ({d['accepted']} accepted, {d['rejected']} "
        f"rejected, {d['emitted']} alerts), {report.checkpoints} signed checkpoints match, "
        f"root {report.root.hex()[:16]}…; complete: {complete.decided} of {complete.positions} "
        "outbox records decided exactly once"
    ), replay


def run_demo(cfg: Settings, *, keep_running: bool = True) -> None:
    """The main job; leaves the broker running for exploration unless told otherwise."""
    broker = LocalBroker(cfg.broker_dir, cfg.broker_port, heap=cfg.broker_heap)
    if cfg.uses_local_broker:
        reset_demo_state(cfg, broker)
    registry, rings = new_federation(utcnow() - timedelta(days=1), witness_quorum=WITNESS_QUORUM)
    ui.say(
        f"[1/6] development federation: {len(registry.agencies)} agencies + router and audit keys"
        + (", Kafka credentials for each principal" if cfg.secure else "")
    )
    for ring in rings.values():
        keystore.save_keyring(cfg.keystore_dir, ring)
    keystore.save_registry(cfg.keystore_dir, registry)
    keystore.save_genesis(cfg.keystore_dir, sign_genesis(registry, rings))
    if cfg.uses_local_broker:
        mode = "SASL/SCRAM-SHA-512 + ACLs" if cfg.secure else "PLAINTEXT (asked for)"
        ui.say(f"[2/6] fresh embedded Kafka in {cfg.home}, {mode} (previous demo state removed)")
        if cfg.secure:
            ensure_credentials(cfg.credentials_dir, [ADMIN])  # the broker is formatted with it
        broker = local_broker(cfg)
        broker.start()
    else:
        ui.say(f"[2/6] using the existing cluster at {cfg.bootstrap_servers}")
    asyncio.run(provision(cfg, registry))  # topics; secured: every principal's user, the ACLs
    ui.say(
        f"[3/6] worker (router + deadlines; clue acknowledgement deadline {ACK_DEADLINE:.0f}s) "
        "and audit agent starting"
    )
    worker = start_worker(cfg)
    auditor = AuditProcess(cfg.home, cfg.bootstrap_servers, JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol)
    witnesses = WitnessProcess(
        cfg.home, cfg.bootstrap_servers, JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol
    )
    gateway: GatewayProcess | None = None
    try:
        auditor.start()
        witnesses.start()
        gateway, token = start_gateway(cfg)
        ui.say(f"      {GATEWAY_AGENCY} plays its part over HTTP through its gateway at {gateway.url}")
        ui.say("[4/6] scenario")
        began = time.monotonic()
        fed = asyncio.run(scenario(cfg, registry, rings, {GATEWAY_AGENCY: (gateway.url, token)}))
        asyncio.run(all_decided(cfg, registry))
        ui.say(
            f"scenario played in {time.monotonic() - began:.1f}s: "
            f"{len(fed.expected.rejections)} hostile events rejected as expected, "
            f"{len(fed.expected.overdue)} overdue items alerted"
        )
    finally:
        if gateway is not None:
            gateway.stop()
        worker.stop()
        auditor.stop()  # signs a final checkpoint over everything routed
    try:
        cosigned = asyncio.run(all_witnessed(cfg, registry))
    finally:
        witnesses.stop()
    observed = fed.observed()
    ui.say("[5/6] summary, as the agencies' own inboxes saw it")
    print_projection(observed, as_json=False, title="demo summary")
    summary = {"agencies": observed.rows()}
    (cfg.home / "demo-summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    ui.say(
        f"registry in force: v{fed.registry.version} (chair {fed.registry.chair}; "
        f"digest {fed.registry.digest[:16]}…, linked to v{fed.registry.version - 1}), "
        "changed live by the agencies' joint decision"
    )
    ui.say("[6/6] the audit log")
    ui.say(cosigned)
    verdict, replay = verify_and_replay(cfg, registry)
    ui.say(verdict)
    same = replay.rows() == observed.rows()
    ui.say(
        "replay of the audit log reproduces the summary above: "
        + ("yes, exactly" if same else "[bold red]NO[/]")
    )
    if not keep_running and cfg.uses_local_broker:
        broker.stop()
    elif cfg.uses_local_broker:
        default = Settings.model_fields["broker_port"].default
        jb = ".venv/bin/jointbus" + ("" if broker.port == default else f" --port {broker.port}")
        ui.say(
            f"the broker keeps running at {broker.bootstrap}: try `{jb} status`, "
            f"`{jb} inbox --agency cq-yongchuan`, `{jb} audit verify`, "
            f"`{jb} console` (the auditors' web console); "
            f"stop it with `{jb} broker stop`"
        )
    if not same:
        raise JointbusError("the audit replay differs from what the agencies saw", reason="demo_failed")
