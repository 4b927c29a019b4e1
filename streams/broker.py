"""The embedded single-node Kafka broker (KRaft, broker+controller on loopback).

Jars come from Maven Central through ``streams/kafka/pom.xml`` into a cache outside git
(``$JOINTBUS_CACHE`` or ``~/.cache/jointbus``). The data directory holds the broker's
config, logs, pid and KRaft metadata, so data survives a stop and a start.

Nothing secret leaves the owner's reach: the data directory and ``log.dirs`` are 0700, the
config (admin password, controller secret) is 0600, Kafka runs under umask 077, and the
SCRAM passwords given to the storage tool travel in a java ``@argfile``, never on a
command line (``/proc/<pid>/cmdline`` is readable by every user of the host).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from jointbus.streams.errors import BrokerError
from jointbus.streams.keystore import private_dir, write_private
from jointbus.streams.security import ADMIN, MECHANISM, Credentials

KAFKA_VERSION = "4.1.1"  # keep in step with streams/kafka/pom.xml
_HERE = Path(__file__).parent / "kafka"
POM = _HERE / "pom.xml"
LOG4J2 = _HERE / "log4j2.properties"
READY_TIMEOUT = 90.0
PRIVATE_UMASK = 0o077  # files the broker and its tools create: owner only
log = structlog.get_logger("jointbus.broker")


def cache_dir() -> Path:
    """Where the Kafka jars are cached (outside the repository)."""
    base = os.environ.get("JOINTBUS_CACHE") or os.path.join(Path.home(), ".cache", "jointbus")
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def java_major(java: str) -> int:
    """The major version of a ``java`` executable (17 for "17.0.15")."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """A Java 17+ executable: ``$JAVA_HOME/bin/java`` or ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise BrokerError(
            "Java 17+ is needed to run the local Kafka broker; install a JDK "
            "(e.g. apt-get install openjdk-17-jre-headless)",
            reason="java_missing",
        )
    if java_major(candidate) < 17:
        raise BrokerError(
            f"{candidate} is older than Java 17, which Kafka {KAFKA_VERSION} needs",
            reason="java_missing",
        )
    return candidate


def fetch_jars(*, quiet: bool = True) -> Path:
    """Resolve the broker's jars from Maven Central once; returns the jar directory."""
    lib = cache_dir() / "lib"
    if (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is needed once to fetch the Kafka jars; install it (e.g. apt-get install maven)",
            reason="maven_missing",
        )
    staging = cache_dir() / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    log.info("fetching kafka jars", version=KAFKA_VERSION, into=str(lib))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise BrokerError("could not fetch the Kafka jars: " + " | ".join(tail), reason="fetch_failed")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on (host, port) and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


async def probe(bootstrap: str, wait: float = 5.0, **kafka: Any) -> bool:
    """True when the cluster answers a metadata request (not merely an open port)."""
    if not _port_open(bootstrap):
        return False
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return await _describe(bootstrap, wait, **kafka)
    finally:
        quiet.setLevel(level)


async def _describe(bootstrap: str, wait: float, **kafka: Any) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(wait * 1000), **kafka)
    try:
        await asyncio.wait_for(admin.start(), wait)
        await asyncio.wait_for(admin.describe_cluster(), wait)
        return True
    except Exception:  # any failure means "not serving yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


@dataclass
class BrokerState:
    """What the data directory remembers of its broker."""

    port: int
    controller_port: int
    cluster_id: str
    pid: int | None = None
    secure: bool = False


@dataclass(frozen=True)
class ClusterRole:
    """What a node of a local multi-node cluster shares with the others (``streams.cluster``)."""

    node_id: int
    controller_port: int
    voters: str  # controller.quorum.voters of the whole cluster
    cluster_id: str
    controller_secret: Path  # one secret for every node's controller listener
    replication: int = 3
    min_isr: int = 2


class LocalBroker:
    """A single-node KRaft Kafka in ``data_dir`` listening on 127.0.0.1:``port`` (or, with a
    ``role``, one node of a local cluster)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        heap: str = "768m",
        extra_config: dict[str, str] | None = None,
        scram_users: dict[str, Credentials] | None = None,
        role: ClusterRole | None = None,
    ) -> None:
        """``scram_users``: run secured — SASL/SCRAM-SHA-512 on the client listener, these
        users created at format time, StandardAuthorizer denying what no ACL allows; the
        ``admin`` user is the super user that provisions ACLs."""
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.heap = heap
        self.extra_config = extra_config or {}
        self.scram_users = scram_users
        self.role = role
        if scram_users is not None and ADMIN not in scram_users:
            raise BrokerError("a secured broker needs an admin user", reason="config")

    @property
    def admin_kwargs(self) -> dict[str, Any]:
        """aiokafka arguments that reach this broker as its super user (none when open)."""
        return {} if self.scram_users is None else self.scram_users[ADMIN].client_kwargs()

    def _security_config(self, state: BrokerState) -> dict[str, str]:
        if self.scram_users is None:
            return {}
        admin = self.scram_users[ADMIN]
        controller = self._controller_secret()
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        return {
            "listeners": f"CLIENT://127.0.0.1:{state.port},CONTROLLER://127.0.0.1:{state.controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{state.port}",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} username="controller" password="{controller}" user_controller="{controller}";'
            ),
            "listener.name.client.scram-sha-512.sasl.jaas.config": (
                f'{scram} username="{ADMIN}" password="{admin.password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:controller",
        }

    def _controller_secret(self) -> str:
        path = self.role.controller_secret if self.role is not None else self.data_dir / "controller.secret"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def state(self) -> BrokerState | None:
        """The remembered state, or None before the first start."""
        if not self._state_file.exists():
            return None
        return BrokerState(**json.loads(self._state_file.read_text()))

    def _save(self, state: BrokerState) -> None:
        self._state_file.write_text(json.dumps(state.__dict__))

    def pid(self) -> int | None:
        """The pid of this data directory's running broker, if any."""
        state = self.state()
        if state is None or state.pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return state.pid if "kafka.Kafka" in cmdline and str(self.data_dir) in cmdline else None

    def _write_config(self, state: BrokerState) -> Path:
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{state.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{state.port},CONTROLLER://127.0.0.1:{state.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{state.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # one node: commit each metadata change (topic, ACL, SCRAM user) at once instead
            # of lingering 25 ms to batch it with others; provisioning sends one per ACL
            "controller.quorum.append.linger.ms": "1",
            "log.retention.check.interval.ms": "60000",
            # a transaction left open past its timeout is aborted within a second, not ten:
            # its readers (read_committed) wait no longer than they must
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            **self._cluster_config(),
            **self._security_config(state),
            **self.extra_config,
        }
        path = self.data_dir / "server.properties"
        write_private(path, "".join(f"{k}={v}\n" for k, v in config.items()))  # holds secrets
        return path

    def _cluster_config(self) -> dict[str, str]:
        """A node of a cluster: its id, the quorum, and replication for the internal topics."""
        role = self.role
        if role is None:
            return {}
        factor, isr = str(role.replication), str(role.min_isr)
        return {
            "node.id": str(role.node_id),
            "controller.quorum.voters": role.voters,
            "default.replication.factor": factor,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": factor,
            "transaction.state.log.replication.factor": factor,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": factor,
            "share.coordinator.state.topic.min.isr": isr,
            "controller.quorum.append.linger.ms": "5",
        }

    def _jvm(self, java: str, lib: Path, heap: str = "256m", *, short_lived: bool = False) -> list[str]:
        """The java command line; ``short_lived`` (a tool that exits within a second): the
        quick C1 compiler only, which halves its start-up, and G1 is not worth starting."""
        return [
            java,
            f"-Xmx{heap}",
            *(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if short_lived else ["-XX:+UseG1GC"]),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            "-cp",
            f"{lib}/*",
        ]

    def _format(self, java: str, lib: Path, cluster_id: str, config: Path) -> None:
        """Format the KRaft storage, creating the SCRAM users.

        The storage tool takes the users only as ``--add-scram`` arguments, so its main class
        and arguments go in a java ``@argfile`` (JDK 9+; the launcher expands a file that
        holds the main class and its arguments): mode 0600 in a fresh 0700 folder, deleted
        as soon as the tool exits. ``/proc/<pid>/cmdline`` then shows only ``@<file>``, and
        ``-XX:-UsePerfData`` keeps the expanded command out of ``/tmp/hsperfdata_*``.
        """
        args = [
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            "--ignore-formatted",
            *self._scram_arguments(),
        ]
        with tempfile.TemporaryDirectory(prefix=".format-", dir=self.data_dir) as scratch:
            argfile = Path(scratch) / "storage-tool.args"
            write_private(argfile, "".join(_argfile_quote(a) + "\n" for a in args))
            done = subprocess.run(
                [*self._jvm(java, lib, short_lived=True), "-XX:-UsePerfData", f"@{argfile}"],
                capture_output=True,
                text=True,
                check=False,
                umask=PRIVATE_UMASK,
            )
        if done.returncode != 0:
            raise BrokerError(
                "formatting the broker's storage failed: "
                + self._scrub(done.stdout[-300:] + done.stderr[-300:]),
                reason="start_failed",
            )

    def _scrub(self, text: str) -> str:
        """``text`` with every SCRAM password masked (a tool's error may echo its arguments)."""
        for user in (self.scram_users or {}).values():
            text = text.replace(user.password, "***")
        return text

    def start(self, timeout: float = READY_TIMEOUT, *, wait: bool = True) -> BrokerState:
        """Start (formatting on first use) and wait until the broker serves requests (a node
        of a cluster: ``wait=False``, the cluster waits for its quorum)."""
        running = self.pid()
        if running is not None:
            state = self.state()
            assert state is not None
            if asyncio.run(probe(f"127.0.0.1:{state.port}", **self.admin_kwargs)):
                return state
            raise BrokerError(
                f"a broker (pid {running}) owns {self.data_dir} but does not answer; "
                "run 'jointbus broker stop' first",
                reason="start_failed",
            )
        java = find_java()
        lib = fetch_jars()
        private_dir(self.data_dir)
        private_dir(self.data_dir / "kraft")  # log.dirs: segments, metadata, SCRAM hashes
        state = self.state()
        if not port_free(self.port):
            raise BrokerError(
                f"port {self.port} on 127.0.0.1 is already in use; choose another with --port",
                reason="port_taken",
            )
        if self.role is not None:
            controller = self.role.controller_port
        elif state is None or not port_free(state.controller_port):
            controller = free_port()
            while controller == self.port:
                controller = free_port()
        else:
            controller = state.controller_port
        formatted = (self.data_dir / "kraft" / "meta.properties").exists()
        if formatted and state is not None and state.secure != (self.scram_users is not None):
            was = "secured" if state.secure else "plaintext"
            raise BrokerError(
                f"the broker data in {self.data_dir} was created {was}; start it the same way "
                "(or use another --data-dir)",
                reason="config",
            )
        cluster_id = state.cluster_id if state and formatted else _random_cluster_id()
        if self.role is not None:
            cluster_id = self.role.cluster_id
        state = BrokerState(
            port=self.port,
            controller_port=controller,
            cluster_id=cluster_id,
            secure=self.scram_users is not None,
        )
        config = self._write_config(state)
        if not formatted:
            self._format(java, lib, cluster_id, config)
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(log_fd, 0o600)
        with os.fdopen(log_fd, "ab") as out:
            proc = subprocess.Popen(
                [*self._jvm(java, lib, heap=self.heap), "kafka.Kafka", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.data_dir,
                umask=PRIVATE_UMASK,
            )
        state.pid = proc.pid
        self._save(state)
        log.info("broker starting", pid=proc.pid, bootstrap=self.bootstrap, data_dir=str(self.data_dir))
        if not wait:
            return state
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with status {proc.returncode}: " + self._log_tail(),
                    reason="start_failed",
                )
            if asyncio.run(probe(self.bootstrap, wait=3.0, **self.admin_kwargs)):
                return state
            time.sleep(0.1)  # probe() tries a connection first: cheap while the port is closed
        self.stop()
        raise BrokerError(
            f"the broker did not serve within {timeout:.0f}s: " + self._log_tail(),
            reason="start_failed",
        )

    def _scram_arguments(self) -> list[str]:
        args: list[str] = []
        for user in (self.scram_users or {}).values():
            args += ["--add-scram", f"{MECHANISM}=[name={user.username},password={user.password}]"]
        return args

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines if " ERROR " in ln or "Exception" in ln]
        return " | ".join((errors or lines)[-3:])[:600]

    def stop(self, timeout: float = 30.0, *, kill: bool = False) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); False if none ran."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        state = self.state()
        if state is not None:
            state.pid = None
            self._save(state)
        return True

    def status(self) -> tuple[bool, BrokerState | None]:
        """(serving, remembered state)."""
        state = self.state()
        if self.pid() is None or state is None:
            return False, state
        return asyncio.run(probe(f"127.0.0.1:{state.port}", **self.admin_kwargs)), state


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _argfile_quote(arg: str) -> str:
    """One argument of a java @argfile: quoted, with backslash and quote escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _random_cluster_id() -> str:
    """A KRaft cluster id; never starting with '-', which the storage tool reads as an option."""
    import base64
    import uuid

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
