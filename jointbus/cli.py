"""The ``jointbus`` command line."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click
from aiokafka.errors import KafkaError

from jointbus import context, ui
from jointbus.options import metrics_option, period_options
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.broker import KAFKA_VERSION, LocalBroker, fetch_jars
from jointbus.streams.clients import classify
from jointbus.streams.errors import BrokerError
from jointbus.streams.logs import configure_logging
from jointbus.streams.provision import Provisioned, provision
from jointbus.streams.security import ADMIN, ensure_credentials, principals
from jointbus.streams.settings import Settings

if TYPE_CHECKING:
    from jointbus.streams.cluster import LocalCluster


class JointbusGroup(click.Group):
    """A click group that turns jointbus errors into one readable line and exit status 2.

    Kafka's own exceptions are classified first (``streams.clients.classify``), so a refused
    password or ACL is never called retriable; only what may succeed later says so.
    """

    #: command groups imported only when used (``jointbus --help`` and the other commands
    #: start without them)
    lazy: ClassVar[dict[str, str]] = {
        "audit": "jointbus.auditcli:audit_group",
        "govern": "jointbus.govern:govern_group",
        "conformance": "jointbus.conformancecli:conformance_group",
        "verify": "jointbus.conformancecli:verify_command",
        "witness": "jointbus.witnesscli:witness_group",
        "quotas": "jointbus.quotascli:quotas_group",
        "gateway": "jointbus.gateway.cli:gateway_group",
        "console": "jointbus.console.cli:console_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self.lazy.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, name = where.split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (JointbusError, KafkaError) as exc:
            error = exc if isinstance(exc, JointbusError) else classify(exc)
            retry = " (retriable: try again)" if error.retriable else ""
            ui.fail(f"{error.message}{retry} [{error.reason}]")
            sys.exit(2)
        except KeyboardInterrupt:
            ui.fail("interrupted")
            sys.exit(130)


@click.group(cls=JointbusGroup)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default from settings)")
@click.option(
    "--port",
    "broker_port",
    type=click.IntRange(1024, 65535),
    default=None,
    help="the local broker's client port for every command (same as JOINTBUS_BROKER_PORT)",
)
@click.option(
    "--bootstrap",
    default=None,
    help="Kafka bootstrap servers host:port[,...] for every command (same as JOINTBUS_BOOTSTRAP)",
)
def cli(log_level: str | None, broker_port: int | None, bootstrap: str | None) -> None:
    """jointbus: the signed event bus of the Sichuan–Chongqing supervision agencies."""
    if broker_port is not None:  # also for the processes a command starts (worker, demo)
        os.environ["JOINTBUS_BROKER_PORT"] = str(broker_port)
    click.get_current_context().obj = {"broker_port": broker_port}  # named here, not inherited
    if bootstrap is not None:
        os.environ["JOINTBUS_BOOTSTRAP"] = bootstrap
    cfg = context.settings()
    configure_logging(log_level or cfg.log_level)
    context.protect_home(cfg)


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
@click.option("--plaintext", is_flag=True, help="no authentication or ACLs (quick local look only)")
@click.option(
    "--nodes",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="3 or more: a local KRaft cluster (replication 3, min.insync.replicas 2); --port is node 1's",
)
def broker_start(port: int | None, data_dir: Path | None, plaintext: bool, nodes: int) -> None:
    """Start the broker secured (SCRAM + ACLs), wait until it serves, and provision the
    registry's members: topics, Kafka users and ACLs (streams/provision.py)."""
    if nodes > 1:
        start_cluster(port, data_dir, plaintext, nodes)
        return
    cfg = context.settings(broker_port=port, security_protocol="PLAINTEXT" if plaintext else "SASL_PLAINTEXT")
    if not cfg.uses_local_broker:
        raise BrokerError(
            f"JOINTBUS_BOOTSTRAP points at {cfg.bootstrap}; no local broker is started",
            reason="config",
        )
    state = LocalBroker(data_dir or cfg.broker_dir, port or cfg.broker_port).state()
    if state is not None and state.secure != cfg.secure:  # the data decides once it exists
        cfg = cfg.model_copy(update={"security_protocol": "SASL_PLAINTEXT" if state.secure else "PLAINTEXT"})
    if cfg.secure:
        ensure_credentials(cfg.credentials_dir, [ADMIN])  # the broker is formatted with it
    registry = _local_registry(cfg)
    b = context.local_broker(cfg, port, data_dir)
    began = time.monotonic()
    with ui.out.status(f"starting Kafka {KAFKA_VERSION} in {b.data_dir} ..."):
        b.start()
        done = asyncio.run(provision(cfg, registry))
    took = time.monotonic() - began
    ui.say(f"broker serving at {b.bootstrap} ({took:.1f}s; {_provisioned(done, cfg.secure)})")
    if registry is None:
        also = " and the service principals" if cfg.secure else ""
        ui.say(
            f"no registry in {cfg.keystore_dir} yet: only the shared topics{also} were provisioned; "
            "run `jointbus keys init`, then `jointbus topics create` for the agencies"
        )


def start_cluster(port: int | None, data_dir: Path | None, plaintext: bool, nodes: int) -> None:
    """``broker start --nodes N``: the local cluster, provisioned with replication 3."""
    from jointbus.streams.cluster import LocalCluster

    if nodes < 3:
        raise BrokerError("a cluster has three nodes or more", reason="config")
    cfg = context.settings(
        broker_port=port, security_protocol="PLAINTEXT" if plaintext else "SASL_PLAINTEXT", replication=3
    )
    directory = data_dir or cfg.broker_dir
    users = {ADMIN: ensure_credentials(cfg.credentials_dir, [ADMIN])[ADMIN]} if cfg.secure else None
    cluster = LocalCluster(
        directory, nodes, [port or cfg.broker_port], heap=cfg.broker_heap, scram_users=users
    )
    registry = _local_registry(cfg)
    began = time.monotonic()
    with ui.out.status(f"starting a {nodes}-node Kafka {KAFKA_VERSION} cluster in {directory} ..."):
        cluster.start()
        done = asyncio.run(provision(cfg.model_copy(update={"bootstrap": cluster.bootstrap}), registry))
    ui.say(
        f"cluster serving at {cluster.bootstrap} ({time.monotonic() - began:.1f}s; replication 3, "
        f"min.insync.replicas 2; {_provisioned(done, cfg.secure)})"
    )
    secure = " JOINTBUS_SECURITY_PROTOCOL=SASL_PLAINTEXT" if cfg.secure else ""
    ui.say(
        f"point every process at all nodes: export JOINTBUS_BOOTSTRAP={cluster.bootstrap} "
        f"JOINTBUS_REPLICATION=3{secure}"
    )


def _local_registry(cfg: Settings) -> Registry | None:
    """The keystore's registry, or None before `jointbus keys init`."""
    if not (cfg.keystore_dir / keystore.REGISTRY_FILE).exists():
        return None
    return keystore.load_registry(cfg.keystore_dir)


def _provisioned(done: Provisioned, secure: bool) -> str:
    """One phrase saying what provisioning did."""
    said = f"{len(done.agencies)} member agencies: {len(done.topics)} topics created"
    if secure:
        said += f", {len(done.users)} Kafka users created, {done.acls} ACLs applied"
        if done.quota_version is not None:
            said += f", quotas of registry v{done.quota_version} set"
    return said


def _same_broker(port: int | None, data_dir: Path | None, serving: int | None, directory: Path) -> None:
    """Refuse when a port was named and the broker running from ``directory`` serves another
    one: the data directory, not the port, picks the broker, and stopping the demo's broker
    when another was meant must not happen. Named: ``--port`` (the command's or jointbus's),
    or ``JOINTBUS_BROKER_PORT`` when no ``--data-dir`` says which broker is meant."""
    obj = click.get_current_context().find_root().obj
    asked = port or (obj.get("broker_port") if isinstance(obj, dict) else None)
    env = os.environ.get("JOINTBUS_BROKER_PORT", "")
    if asked is None and data_dir is None and env.isdigit():
        asked = int(env)
    if asked is not None and serving is not None and serving != asked:
        raise BrokerError(
            f"the broker running from {directory} serves port {serving}, not {asked}; "
            f"name the one you mean with --data-dir, or pass --port {serving}",
            reason="other_broker",
        )


def _cluster_port(cluster: LocalCluster) -> int | None:
    """The port a running local cluster is named by (node 1's), None when no node runs."""
    return cluster.nodes[0].port if any(node.pid() is not None for node in cluster.nodes) else None


@broker.command("stop")
@port_opt
@dir_opt
def broker_stop(port: int | None, data_dir: Path | None) -> None:
    """Stop the broker, or every node of a local cluster (the data stays)."""
    from jointbus.streams.cluster import existing_cluster, is_cluster

    cfg = context.settings()
    directory = data_dir or cfg.broker_dir
    if is_cluster(directory):
        cluster = existing_cluster(directory)
        _same_broker(port, data_dir, _cluster_port(cluster), directory)
        ui.say("cluster stopped" if cluster.stop() else f"no node running in {directory}")
        return
    b = context.local_broker(cfg, port, data_dir)
    state = b.state()
    _same_broker(
        port, data_dir, state.port if state is not None and b.pid() is not None else None, b.data_dir
    )
    ui.say("broker stopped" if b.stop() else f"no broker running in {b.data_dir}")


@broker.command("status")
@port_opt
@dir_opt
def broker_status(port: int | None, data_dir: Path | None) -> None:
    """Say whether the broker (or every node of a local cluster) serves; exit status 1 when
    it does not."""
    from jointbus.streams.cluster import existing_cluster, is_cluster

    cfg = context.settings()
    directory = data_dir or cfg.broker_dir
    if is_cluster(directory):
        cluster = existing_cluster(directory)
        first = cluster.nodes[0].state()
        if first is not None and first.secure:  # the data decides how to reach it
            cluster = existing_cluster(directory, ensure_credentials(cfg.credentials_dir, [ADMIN]))
        _same_broker(port, data_dir, _cluster_port(cluster), directory)
        nodes = cluster.status()
        rows = [(n, p, "yes" if s else "NO") for n, p, s in nodes]
        ui.table(f"cluster in {directory}", ["node", "port", "serving"], rows)
        if not all(s for _, _, s in nodes):
            sys.exit(1)
        return
    b = context.local_broker(cfg, port, data_dir)
    serving, state = b.status()
    _same_broker(port, data_dir, state.port if serving and state is not None else None, b.data_dir)
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
@click.option(
    "--witness-quorum",
    type=click.IntRange(1, 16),
    default=None,
    help="trust an audit checkpoint once this many agencies' witnesses cosigned it (default: not required)",
)
def keys_init(directory: Path | None, force: bool, witness_quorum: int | None) -> None:
    """Create a development federation: registry.json and private/<member>.json (0600)."""
    directory = directory or context.settings().keystore_dir
    if (directory / keystore.REGISTRY_FILE).exists() and not force:
        raise JointbusError(
            f"{directory} already holds a registry; use --force to replace it", reason="exists"
        )
    registry, rings = new_federation(utcnow() - timedelta(days=1), witness_quorum=witness_quorum)
    for ring in rings.values():
        keystore.save_keyring(directory, ring)
    path = keystore.save_registry(directory, registry)
    from jointbus.schemas.registry_chain import sign_genesis

    keystore.save_genesis(directory, sign_genesis(registry, rings))  # every founding agency signs v1
    ensure_credentials(directory / "kafka", principals(registry.agencies))  # keeps existing ones
    ui.table(
        f"registry v{registry.version} written to {path}",
        ["member", "名称", "region", "keys"],
        [
            (m.id, m.name_zh, m.region, ", ".join(k.kid for k in registry.keys if k.owner == m.id))
            for m in registry.members
        ],
    )
    ui.say(
        f"genesis registry signed by all {len(registry.agencies)} founding agencies ({keystore.GENESIS_FILE})"
    )
    ui.say("next: `jointbus broker start` (or `jointbus topics create`) provisions topics, users and ACLs")


@keys.command("rotate")
@click.argument("member")
@click.option("--purpose", type=click.Choice(["sign", "seal"]), default="sign", show_default=True)
@click.option("--overlap-days", default=7.0, show_default=True, help="how long the old key stays valid")
@click.option("--offline", is_flag=True, help="edit the keystore's registry file (a bus not yet running)")
@click.pass_context
def keys_rotate(ctx: click.Context, member: str, purpose: str, overlap_days: float, offline: bool) -> None:
    """Give MEMBER a new key; the old one expires after the overlap (old events still verify).

    On a running bus this is a governance proposal (`govern propose rotate-key`): it takes
    effect when a majority of the agencies signed it. ``--offline`` edits the registry file."""
    from jointbus.schemas.keys import Purpose, rotate

    if not offline:
        from jointbus.govern import propose_rotate_key

        reason = "密钥轮换 (key rotation)"
        ctx.invoke(
            propose_rotate_key, agency=member, purpose=purpose, overlap_hours=overlap_days * 24, reason=reason
        )
        return
    cfg = context.settings()
    registry = keystore.load_registry(cfg.keystore_dir)
    ring = keystore.load_keyring(cfg.keystore_dir, member)
    which: Purpose = "seal" if purpose == "seal" else "sign"
    registry, ring = rotate(registry, ring, which, utcnow(), timedelta(days=overlap_days))
    keystore.save_keyring(cfg.keystore_dir, ring)
    keystore.save_registry(cfg.keystore_dir, registry)
    newest = max(
        (k for k in registry.keys if k.owner == member and k.purpose == purpose), key=lambda k: k.not_before
    )
    ui.say(f"registry v{registry.version}: {member} now uses {newest.kid}; restart the worker to load it")


@keys.command("revoke")
@click.argument("kid")
@click.option("--reason", required=True, help="why (kept in the registry)")
@click.option("--offline", is_flag=True, help="edit the keystore's registry file (a bus not yet running)")
@click.pass_context
def keys_revoke(ctx: click.Context, kid: str, reason: str, offline: bool) -> None:
    """Revoke key KID now: events arriving from now on with it are rejected (key_revoked).

    On a running bus its owner revokes it at once (`govern revoke-own`, one signature);
    ``--offline`` edits the registry file."""
    from jointbus.schemas.keys import revoke

    if not offline:
        from jointbus.govern import revoke_own

        ctx.invoke(revoke_own, agency=kid.split("#", 1)[0], kid=kid, reason=reason)
        return
    cfg = context.settings()
    registry = revoke(keystore.load_registry(cfg.keystore_dir), kid, utcnow(), reason)
    keystore.save_registry(cfg.keystore_dir, registry)
    ui.say(f"registry v{registry.version}: {kid} revoked; restart the worker to load it")


@keys.command("admit")
@click.argument("agency")
@click.option("--name-zh", required=True, help="the agency's name, e.g. 乐山市纪委监委")
@click.option("--name-en", required=True, help="its English name, e.g. Leshan")
@click.option("--region", type=click.Choice(["sichuan", "chongqing"]), required=True)
def keys_admit(agency: str, name_zh: str, name_en: str, region: str) -> None:
    """Admit AGENCY as a new member: registry entry, signing and sealing keys, Kafka
    credentials. `jointbus topics create` then gives it its topics, Kafka user and ACLs."""
    from jointbus.schemas.keys import admit

    cfg = context.settings()
    registry, ring = admit(
        keystore.load_registry(cfg.keystore_dir),
        agency,
        name_zh=name_zh,
        name_en=name_en,
        region="sichuan" if region == "sichuan" else "chongqing",
        now=utcnow(),
    )
    keystore.save_keyring(cfg.keystore_dir, ring)
    keystore.save_registry(cfg.keystore_dir, registry)
    ensure_credentials(cfg.credentials_dir, [agency])
    ui.say(
        f"registry v{registry.version}: {agency} admitted ({len(registry.agencies)} agencies); "
        "run `jointbus topics create`, then restart the worker to route its outbox"
    )


# --------------------------------------------------------------------------------- schemas
@cli.group("schemas")
def schemas_group() -> None:
    """The wire contract for other languages: JSON Schema files and test vectors."""


@schemas_group.command("write")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("schemas/json"))
@click.option(
    "--wire-format",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("docs/wire-format.md"),
    help="the document whose lifecycle tables are regenerated (between its markers)",
)
def schemas_write(directory: Path, wire_format: Path) -> None:
    """Regenerate the JSON Schema files from the models, and the lifecycle tables of the
    wire format from the rules."""
    from jointbus.schemas.jsonschema import CATALOG_FILE, catalog_markdown, documents, render

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.schema.json"):
        stale.unlink()
    docs = documents()
    for name, doc in docs.items():
        (directory / name).write_text(render(doc), encoding="utf-8")
    (directory / CATALOG_FILE).write_text(catalog_markdown(), encoding="utf-8")
    ui.say(f"{len(docs)} schema files and {CATALOG_FILE} written to {directory}")
    if wire_format.exists():
        from jointbus.schemas.transitions import rewrite_tables

        wire_format.write_text(rewrite_tables(wire_format.read_text(encoding="utf-8")), encoding="utf-8")
        ui.say(f"lifecycle tables of {wire_format} regenerated")


@schemas_group.command("vectors")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("schemas/vectors"))
def schemas_vectors(directory: Path) -> None:
    """Regenerate the test vectors and the conformance suite (sealed payloads of the
    previous files are kept when they still open to the same plaintext)."""
    from jointbus.schemas.conformance import SUITE_FILE
    from jointbus.schemas.conformance_build import build_suite, render_suite
    from jointbus.schemas.vectors import WIRE_FILE, build, render

    directory.mkdir(parents=True, exist_ok=True)
    wire, suite = directory / WIRE_FILE, directory / SUITE_FILE
    previous = _json_or_none(wire)
    wire.write_text(render(build(previous)), encoding="utf-8")
    built, document = build_suite(_json_or_none(suite))
    suite.write_text(render_suite(document), encoding="utf-8")
    from jointbus.audit.cosign_vectors import COSIGNATURE_FILE
    from jointbus.audit.cosign_vectors import build as build_cosignatures

    (directory / COSIGNATURE_FILE).write_text(render(build_cosignatures()), encoding="utf-8")
    out = directory
    ui.say(f"test vectors and {len(built.cases)} conformance cases written to {out}")


def _json_or_none(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# ------------------------------------------------------------------------------ the bus
@cli.group()
def topics() -> None:
    """The topics of the bus (docs/architecture.md)."""


@topics.command("create")
def topics_create() -> None:
    """Provision the registry's members on the configured cluster: the missing topics and,
    secured, the missing Kafka users (credentials in <keystore>/kafka) and the ACLs. Run it
    again whenever the registry gains a member."""
    from jointbus.streams.registry_feed import follow

    cfg = context.settings()
    genesis = keystore.load_registry(cfg.keystore_dir)
    registry = asyncio.run(follow(genesis, cfg.bootstrap_servers, **context.kafka(cfg, ADMIN)))
    done = asyncio.run(provision(cfg, registry))
    ui.say(f"{_provisioned(done, cfg.secure)} on {cfg.bootstrap_servers} (registry v{registry.version})")


@cli.command()
@click.option(
    "--ack-deadline",
    type=float,
    default=None,
    help="seconds a transferred clue may wait for its acknowledgement",
)
@click.option("--scan-every", type=float, default=None, help="seconds between deadline scans")
@metrics_option
def worker(ack_deadline: float | None, scan_every: float | None, metrics_port: int | None) -> None:
    """Run the router and deadline agents (foreground; stop with Ctrl-C or SIGTERM)."""
    from jointbus.agents.worker import run_worker

    cfg = context.settings(
        ack_deadline_seconds=ack_deadline, deadline_scan_seconds=scan_every, metrics_port=metrics_port
    )
    run_worker(cfg)


@cli.command()
def workers() -> None:
    """Which worker holds the router lease and routes, and which stand by; exit status 1
    when none leads."""
    from jointbus.agents.worker import LEASE_GROUP
    from jointbus.streams.lease import members

    cfg = context.settings()
    state, found = asyncio.run(members(cfg.bootstrap_servers, LEASE_GROUP, **context.kafka(cfg, ADMIN)))
    rows = [(m.name, m.host, "leads (routes)" if m.leads else "standing by") for m in found]
    ui.table(f"router workers ({LEASE_GROUP}: {state})", ["worker", "host", "role"], rows)
    if not any(m.leads for m in found):
        ui.fail("no worker leads: nothing is routed (start `jointbus worker`)")
        sys.exit(1)


@cli.command()
@click.option("--as", "agency", required=True, help="the publishing agency (its keys sign)")
@click.option("--type", "family", default=None, help="event family, e.g. clue.transferred (one event)")
@click.option("--to", "recipients", default=None, help="comma-separated recipient agencies (one event)")
@click.option("--subject", default=None, help="aggregate subject (default: a new one)")
@click.option("--data", "data_text", default=None, help="payload JSON (or use --file)")
@click.option(
    "--file",
    "data_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="with --type: the payload JSON; without: many events, one JSON object per line "
    '({"type", "to", "data", "subject"?, "causation"?, "correlation"?}); "-" reads standard input',
)
@click.option("--causation", default=None, help="id of the event this one answers")
@click.option("--correlation", default=None, help="conversation id (default: this event's id)")
@click.option(
    "--reply-to",
    default=None,
    help="answer this event of AGENCY's inbox: its subject, it as cause, its conversation, "
    "by default to its sender",
)
@click.option(
    "--wait",
    type=click.Choice(["broker", "routed"]),
    default="broker",
    show_default=True,
    help="return when the broker has the event, or when the router decided it (exit 1 if rejected)",
)
def publish(
    agency: str,
    family: str | None,
    recipients: str | None,
    subject: str | None,
    data_text: str | None,
    data_file: click.utils.LazyFile | None,
    causation: str | None,
    correlation: str | None,
    reply_to: str | None,
    wait: str,
) -> None:
    """Sign (and seal) events as AGENCY and publish them to its outbox: one (--type, --to,
    --data), or many from a JSON-lines --file over one connection."""
    import json

    from jointbus.publishing import checked
    from jointbus.streams.sdk import Publisher, RouteResult, new_subject
    from jointbus.streams.topics import outbox

    if family is None:
        if data_file is None or data_text is not None:
            raise JointbusError("give --type, --to and the payload, or a JSON-lines --file", reason="usage")
        _publish_many(agency, data_file, routed=wait == "routed")
        return
    if reply_to is not None:
        from jointbus.publishing import answering

        original = asyncio.run(answering(context.settings(), agency, reply_to))
        subject = subject or original.subject
        causation = causation or original.id
        correlation = correlation or original.correlationid or original.id
        recipients = recipients or original.sender
    if recipients is None:
        raise JointbusError("give the recipients with --to", reason="usage")
    if (data_text is None) == (data_file is None):
        raise JointbusError("give the payload with exactly one of --data or --file", reason="usage")
    try:
        payload = json.loads(data_text if data_text is not None else data_file.read())  # type: ignore[union-attr]
    except json.JSONDecodeError as exc:
        raise JointbusError(f"the payload is not JSON: {exc}", reason="schema") from None
    spec = checked(family, payload)
    cfg = context.settings()
    registry = keystore.load_registry(cfg.keystore_dir)
    ring = keystore.load_keyring(cfg.keystore_dir, agency)
    subject = subject or new_subject(spec.aggregate)

    to = [r.strip() for r in recipients.split(",") if r.strip()]
    links: dict[str, Any] = {"causationid": causation, "correlationid": correlation}

    async def go() -> tuple[str, RouteResult | None]:
        async with Publisher(
            agency, ring, registry, cfg.bootstrap_servers, **context.kafka(cfg, agency)
        ) as pub:
            if wait == "routed":
                result = await pub.publish_routed(family, subject, to, payload, **links)
                return result.event_id, result
            return await pub.publish(family, subject, to, payload, **links), None

    event_id, result = asyncio.run(go())
    ui.say(f"published {event_id} on {subject} to {outbox(agency)}")
    if result is not None and result.accepted:
        ui.say(f"accepted by the router, delivered to {', '.join(result.delivered_to)}")
    elif result is not None:
        ui.fail(f"rejected by the router: {result.reason}: {result.detail}")
        raise SystemExit(1)


def _publish_many(agency: str, source: click.utils.LazyFile, *, routed: bool) -> None:
    """Many events from JSON lines: bad lines reported by number, the rest published."""
    from jointbus.publishing import Outcome, parse_lines, publish_lines
    from jointbus.streams.topics import outbox

    outcome = Outcome()
    lines = parse_lines(source, outcome)
    cfg = context.settings()
    asyncio.run(publish_lines(cfg, agency, lines, outcome, routed=routed))
    ui.table(
        f"{len(outcome.published)} events published to {outbox(agency)}, "
        f"{len(outcome.refused)} refused before sending",
        ["line", "reason", "detail"],
        [[n, reason, detail[:160]] for n, reason, detail in sorted(outcome.refused)[:50]],
    )
    if routed:
        accepted = len(outcome.published) - len(outcome.rejected)
        ui.table(
            f"the router accepted {accepted} and rejected {len(outcome.rejected)} of them",
            ["line", "reason", "detail"],
            [[n, reason, detail[:160]] for n, reason, detail in sorted(outcome.rejected)[:50]],
        )
    if outcome.refused or outcome.rejected:
        raise JointbusError(
            f"{len(outcome.refused)} lines not published, {len(outcome.rejected)} rejected (see the tables)",
            reason="partial",
        )


@cli.command("catalog")
@click.argument("family", required=False)
@click.option("--as", "agency", default=None, help="only what this agency may publish (its registry rights)")
def catalog(family: str | None, agency: str | None) -> None:
    """The event families agencies publish, or FAMILY's payload fields, from the models."""
    from jointbus.publishing import checked, field_rows
    from jointbus.schemas.catalog import CURRENT

    if family is not None:
        spec = CURRENT.get(family)
        if spec is None or "agency" not in spec.publishers:
            checked(family, {})  # the readable error naming what agencies publish
            return
        doc = (spec.model.__doc__ or "").strip().splitlines()[0]
        sealed = " (sealed to its recipients)" if spec.sensitive else ""
        ui.table(
            f"{spec.type}: {doc}{sealed}", ["field", "type", "required", "description"], field_rows(spec)
        )
        return
    may = None
    if agency is not None:
        member = keystore.load_registry(context.settings().keystore_dir).member(agency)
        may = member.may_publish
    rows = [
        [f, s.aggregate, "yes" if s.sensitive else "", (s.model.__doc__ or "").strip().splitlines()[0][:70]]
        for f, s in CURRENT.items()
        if "agency" in s.publishers and (may is None or may(f))
    ]
    title = "event families agencies publish" + (f" (as {agency})" if agency else "")
    ui.table(f"{title}: `jointbus catalog FAMILY` for the fields", ["family", "kind", "sealed", "what"], rows)


@cli.command("inbox")
@click.option("--agency", required=True, help="whose inbox (its private keys open sealed events)")
@click.option("--follow", is_flag=True, help="keep waiting for new events")
@click.option("--no-receipts", is_flag=True, help="do not send receipts")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per event")
def inbox_cmd(agency: str, follow: bool, no_receipts: bool, as_json: bool) -> None:
    """Read AGENCY's inbox: verified, opened, deduplicated; receipts sent."""
    from jointbus.inbox import show_inbox

    cfg = context.settings()
    asyncio.run(show_inbox(cfg, agency, follow=follow, receipts=not no_receipts, as_json=as_json))


@cli.command()
@period_options
def status(since: str | None, until: str | None, as_json: bool, as_csv: bool) -> None:
    """The figures from the audit log: per agency, and the collaboration's (each event once)."""
    from jointbus.views import load_projection, print_projection

    cfg = context.settings()
    projection = asyncio.run(load_projection(cfg, until, since=since))
    print_projection(projection, as_json=as_json, as_csv=as_csv, title="jointbus status")


@cli.command()
@click.option("--stop", is_flag=True, help="stop the embedded broker at the end")
@click.option("--plaintext", is_flag=True, help="no Kafka authentication (quick look only)")
def demo(stop: bool, plaintext: bool) -> None:
    """The main job: broker, worker, federation, the scenario, and its summary.

    Kafka runs secured (SASL/SCRAM-SHA-512, ACLs) unless --plaintext is given."""
    from jointbus.demo import run_demo

    cfg = context.settings(security_protocol="PLAINTEXT" if plaintext else "SASL_PLAINTEXT")
    run_demo(cfg, keep_running=not stop)


def main() -> None:
    """Entry point of the ``jointbus`` console script."""
    cli(prog_name="jointbus")
