"""Kafka authentication and authorization: SCRAM-SHA-512 principals and deny-by-default ACLs.

One principal per member agency of the registry (its id), one for each bus service (``svc-router``,
``svc-audit``), ``auditor`` for people who verify, and ``admin`` for provisioning. The ACLs
mirror docs/architecture.md: an agency writes only its outbox and reads only its inbox; the router
reads outboxes and writes inboxes and the audit topic; the audit service reads the audit
topic and writes checkpoints; auditors read the audit and checkpoint topics. Which agencies
there are is the registry's answer (``Registry.agencies``); ``streams.provision`` applies it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from jointbus.schemas.registry import AUDIT, ROUTER
from jointbus.streams.errors import ConfigError, StreamsError
from jointbus.streams.keystore import private_dir, write_private
from jointbus.streams.settings import Settings
from jointbus.streams.topics import (
    AUDIT_TOPIC,
    CHECKPOINT_TOPIC,
    COSIGNATURE_PREFIX,
    REGISTRY_TOPIC,
    cosignature_topic,
    inbox,
    outbox,
)

MECHANISM = "SCRAM-SHA-512"
AUDITOR = "auditor"
ADMIN = "admin"
ROUTER_APP = "jointbus-router"  # the faust app id: its group and its changelog topics' prefix

# Kafka protocol codes (org.apache.kafka.common.acl / resource)
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = 2, 3, 4, 5
LITERAL, PREFIXED = 3, 4
ALL, READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS = 2, 3, 4, 5, 8, 10
ALLOW = 3


@dataclass(frozen=True)
class Credentials:
    """A SCRAM principal's name and password."""

    username: str
    password: str

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka keyword arguments that authenticate as this principal."""
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


def principals(agencies: Iterable[str]) -> list[str]:
    """Every principal the bus provisions for these member agencies (a registry's)."""
    return [*agencies, ROUTER, AUDIT, AUDITOR, ADMIN]


def new_credentials(directory: Path, names: Iterable[str]) -> dict[str, Credentials]:
    """Random passwords for ``names``, written to ``directory/<name>.json`` (0600) in a
    folder that it and any parent it creates keep 0700."""
    private_dir(directory)
    made = {}
    for name in names:
        cred = Credentials(name, secrets.token_urlsafe(24))
        write_private(directory / f"{name}.json", json.dumps(cred.__dict__))
        made[name] = cred
    return made


def ensure_credentials(directory: Path, names: Iterable[str]) -> dict[str, Credentials]:
    """The credentials of ``names``: those on disk as they are (a broker may know them),
    random new ones for the others (written as by :func:`new_credentials`)."""
    names = list(names)
    missing = [n for n in names if not (directory / f"{n}.json").exists()]
    try:
        made = new_credentials(directory, missing) if missing else {}
    except OSError as exc:  # e.g. a read-only keystore volume
        which = ", ".join(missing)
        raise ConfigError(f"cannot write Kafka credentials for {which} in {directory}: {exc}") from None
    return {n: made[n] if n in made else load_credentials(directory, n) for n in names}


def kafka_kwargs(settings: Settings, principal: str) -> dict[str, Any]:
    """aiokafka arguments for ``principal`` under these settings (none in plaintext mode)."""
    if not settings.secure:
        return {}
    return load_credentials(settings.credentials_dir, principal).client_kwargs()


def load_credentials(directory: Path, name: str) -> Credentials:
    """The credentials of principal ``name``; refuses files others can read."""
    path = directory / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"no Kafka credentials for {name} in {directory}")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others; chmod 600 it")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Credentials(data["username"], data["password"])


@dataclass(frozen=True)
class Acl:
    """One ALLOW rule: principal may do operation on a resource (literal name or prefix)."""

    principal: str
    operation: int
    resource_type: int
    name: str
    pattern: int = LITERAL


def acl_plan(agencies: Iterable[str]) -> list[Acl]:
    """The ALLOW rules of docs/architecture.md for these member agencies (a registry's, in
    its order); everything else is denied."""
    agencies = list(agencies)
    rules: list[Acl] = []

    def topic(principal: str, name: str, *ops: int, pattern: int = LITERAL) -> None:
        rules.extend(Acl(principal, op, TOPIC, name, pattern) for op in (*ops, DESCRIBE))

    def group(principal: str, prefix: str) -> None:
        rules.append(Acl(principal, READ, GROUP, prefix, PREFIXED))

    for agency in agencies:
        topic(agency, outbox(agency), WRITE)
        topic(agency, inbox(agency), READ)
        topic(agency, REGISTRY_TOPIC, READ)
        topic(agency, CHECKPOINT_TOPIC, READ)  # its witness cosigns them
        # its witness writes its own cosignature topic only, and reads every witness's
        topic(agency, cosignature_topic(agency), WRITE)
        topic(agency, COSIGNATURE_PREFIX, READ, pattern=PREFIXED)
        group(agency, f"jointbus-inbox-{agency}")
    for agency in agencies:
        topic(ROUTER, outbox(agency), READ)
        topic(ROUTER, inbox(agency), WRITE)
    topic(ROUTER, AUDIT_TOPIC, READ, WRITE)  # it rebuilds its memory from the log at start
    topic(ROUTER, REGISTRY_TOPIC, READ)
    topic(ROUTER, REGISTRY_TOPIC, WRITE)  # each registry version governance brings into force
    topic(ROUTER, f"{ROUTER_APP}-", ALL, pattern=PREFIXED)  # faust changelogs
    group(ROUTER, ROUTER_APP)  # and the workers' lease group, ROUTER_APP-lease
    # the routers' one transactional id: whichever starts fences the others' writes
    rules.extend(Acl(ROUTER, op, TRANSACTIONAL_ID, ROUTER_APP, LITERAL) for op in (WRITE, DESCRIBE))
    rules.append(Acl(ROUTER, CREATE, CLUSTER, "kafka-cluster"))  # faust declares its changelogs
    rules.append(Acl(ROUTER, DESCRIBE_CONFIGS, CLUSTER, "kafka-cluster"))
    topic(AUDIT, AUDIT_TOPIC, READ)
    topic(AUDIT, CHECKPOINT_TOPIC, READ, WRITE)
    topic(AUDIT, REGISTRY_TOPIC, READ)
    topic(AUDIT, COSIGNATURE_PREFIX, READ, pattern=PREFIXED)
    topic(AUDITOR, AUDIT_TOPIC, READ)
    for agency in agencies:  # completeness: every outbox record has a decision (offsets only)
        topic(AUDITOR, outbox(agency), READ)
    topic(AUDITOR, CHECKPOINT_TOPIC, READ)
    topic(AUDITOR, COSIGNATURE_PREFIX, READ, pattern=PREFIXED)
    topic(AUDITOR, REGISTRY_TOPIC, READ)
    group(AUDITOR, f"jointbus-inbox-{AUDITOR}")
    return rules


async def apply_acls(bootstrap: str, admin: Credentials, rules: Iterable[Acl]) -> int:
    """Create the ACLs (idempotent on the broker's side); returns how many were sent."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **admin.client_kwargs())
    await client.start()
    try:
        return await create_acls(client, rules)
    finally:
        await client.close()


async def create_acls(client: AIOKafkaAdminClient, rules: Iterable[Acl]) -> int:
    """Create the ACLs through a started admin client; returns how many were sent."""
    count = 0
    for rule in rules:
        request = CreateAclsRequest(
            rule.resource_type,
            rule.name,
            rule.pattern,
            f"User:{rule.principal}",
            "*",
            rule.operation,
            ALLOW,
        )
        response = await client._send_request(request)
        for error_code, message in response.creation_responses:
            if error_code:
                raise StreamsError(f"creating an ACL failed ({error_code}): {message}", reason="acl_failed")
        count += 1
    return count
