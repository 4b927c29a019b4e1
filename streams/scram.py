"""SCRAM users on a running cluster, through the Admin API (KIP-554).

A broker formatted with only its admin user learns every other principal here: the
password is salted and hashed in this process (PBKDF2-HMAC-SHA-512, as Kafka's own
``kafka-configs --add-config 'SCRAM-SHA-512=[...]'`` does) and only the salt and the salted
password travel to the broker, over the admin's authenticated connection. No password is
ever put on a command line or in a file of someone else's.

aiokafka has no client for these two requests, so their wire structs are defined here from
Kafka's message definitions (DescribeUserScramCredentials v0, AlterUserScramCredentials v0;
both flexible). mypy sees aiokafka as untyped, hence the ``type: ignore[misc]`` on each.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from jointbus.streams.admin import check_admin_answer
from jointbus.streams.security import Credentials

SCRAM_SHA_512 = 2  # org.apache.kafka.clients.admin.ScramMechanism
ITERATIONS = 4096  # Kafka's default and the minimum it accepts for SCRAM-SHA-512
_RESOURCE_NOT_FOUND = 91


class _DescribeResponse(Response):  # type: ignore[misc]
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                (
                    "credential_infos",
                    CompactArray(("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields)),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = _DescribeResponse
    SCHEMA = Schema(
        ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _Describe(Request[_DescribeStruct]):  # type: ignore[misc]
    """Every user that has SCRAM credentials (``users`` null)."""

    API_KEY = 50

    def build(self, request_struct_class: type[_DescribeStruct]) -> _DescribeStruct:
        return request_struct_class(None, {})


class _AlterResponse(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user_name", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _Alter(Request[_AlterStruct]):  # type: ignore[misc]
    """Upsert SCRAM-SHA-512 credentials (no deletions)."""

    API_KEY = 51

    def __init__(self, upsertions: list[tuple[Any, ...]]) -> None:
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_AlterStruct]) -> _AlterStruct:
        return request_struct_class([], self._upsertions, {})


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802 ``Hi``) for SHA-512: what the broker stores."""
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)


def _check(code: int, message: str | None, what: str) -> None:
    check_admin_answer(code, message, what, "scram_failed")


async def scram_users(admin: AIOKafkaAdminClient) -> set[str]:
    """The users that have SCRAM-SHA-512 credentials on the cluster."""
    response = await admin._send_request(_Describe())
    if response.error_code != _RESOURCE_NOT_FOUND:
        _check(response.error_code, response.error_message, "describing SCRAM users")
    found = set()
    for user, code, message, infos, _ in response.results:
        _check(code, message, f"describing the SCRAM user {user}")
        if any(mechanism == SCRAM_SHA_512 for mechanism, _, _ in infos):
            found.add(user)
    return found


async def add_scram_users(admin: AIOKafkaAdminClient, users: Iterable[Credentials]) -> list[str]:
    """Create (or replace) the SCRAM-SHA-512 credentials of ``users``; returns their names."""
    upsertions: list[tuple[Any, ...]] = []
    for user in users:
        salt = secrets.token_bytes(32)
        upsertions.append(
            (user.username, SCRAM_SHA_512, ITERATIONS, salt, salted_password(user.password, salt), {})
        )
    if not upsertions:
        return []
    response = await admin._send_request(_Alter(upsertions))
    for name, code, message, _ in response.results:
        _check(code, message, f"creating the SCRAM user {name}")
    return [u[0] for u in upsertions]
