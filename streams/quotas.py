"""Per-agency Kafka client quotas, through the Admin API (KIP-546).

Each member agency's SCRAM user gets a produce byte rate, a fetch byte rate and a share of
the broker's request-handling time, so one agency's flood is slowed by the broker itself
(throttled responses, then a muted connection) before it reaches the router, and the other
agencies' records keep their share. The figures are the registry's policy
(``Policy.produce_bytes_per_second`` ...), changed only by the members' decision; where the
policy says nothing, the bus's defaults below apply. Kafka 4 has no static default quotas,
so every user is given its figures explicitly; the bus's services are not throttled.

aiokafka has no client for these two requests, so their wire structs are defined here from
Kafka's message definitions (DescribeClientQuotas v1, AlterClientQuotas v1; both flexible),
as ``streams.scram`` does for SCRAM users. mypy sees aiokafka as untyped, hence the
``type: ignore[misc]`` on each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Float64,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from jointbus.schemas.registry import Policy, Registry
from jointbus.streams.admin import check_admin_answer

log = structlog.get_logger("jointbus.quotas")

#: Kafka's quota keys, by the policy field that sets each
PRODUCE = "producer_byte_rate"
CONSUME = "consumer_byte_rate"
REQUESTS = "request_percentage"
#: the bus's own figures where the registry's policy sets none: far above an honest
#: agency's traffic (a province's 20x burst is about 110 events/s of ~2 KB for everyone
#: together), far below what lets one agency crowd the others out
DEFAULT_QUOTAS: Mapping[str, float] = {
    PRODUCE: 1_048_576.0,  # 1 MiB/s into its outbox
    CONSUME: 4_194_304.0,  # 4 MiB/s out of its inbox and the shared topics
    REQUESTS: 25.0,  # a quarter of one broker thread's time
}
_USER = "user"
_MATCH_EXACT = 0


def quotas_of(policy: Policy) -> dict[str, float]:
    """The quota values a member agency's Kafka user gets under ``policy``."""
    chosen = {
        PRODUCE: policy.produce_bytes_per_second,
        CONSUME: policy.consume_bytes_per_second,
        REQUESTS: policy.request_percentage,
    }
    return {key: float(value if value is not None else DEFAULT_QUOTAS[key]) for key, value in chosen.items()}


_ENTITY = CompactArray(
    ("entity_type", CompactString("utf-8")), ("entity_name", CompactString("utf-8")), ("tags", TaggedFields)
)


class _DescribeResponse(Response):  # type: ignore[misc]
    API_KEY = 48
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "entries",
            CompactArray(
                ("entity", _ENTITY),
                (
                    "values",
                    CompactArray(("key", CompactString("utf-8")), ("value", Float64), ("tags", TaggedFields)),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 48
    API_VERSION = 1
    RESPONSE_TYPE = _DescribeResponse
    SCHEMA = Schema(
        (
            "components",
            CompactArray(
                ("entity_type", CompactString("utf-8")),
                ("match_type", Int8),
                ("match", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("strict", Boolean),
        ("tags", TaggedFields),
    )


class _Describe(Request[_DescribeStruct]):  # type: ignore[misc]
    """The quotas of one user, exactly (``strict``: entities of that user alone)."""

    API_KEY = 48

    def __init__(self, user: str) -> None:
        self._user = user

    def build(self, request_struct_class: type[_DescribeStruct]) -> _DescribeStruct:
        return request_struct_class([(_USER, _MATCH_EXACT, self._user, {})], True, {})


class _AlterResponse(Response):  # type: ignore[misc]
    API_KEY = 49
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "entries",
            CompactArray(
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("entity", _ENTITY),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 49
    API_VERSION = 1
    RESPONSE_TYPE = _AlterResponse
    SCHEMA = Schema(
        (
            "entries",
            CompactArray(
                ("entity", _ENTITY),
                (
                    "ops",
                    CompactArray(
                        ("key", CompactString("utf-8")),
                        ("value", Float64),
                        ("remove", Boolean),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("validate_only", Boolean),
        ("tags", TaggedFields),
    )


class _Alter(Request[_AlterStruct]):  # type: ignore[misc]
    """Set the quota values of each user (no removals)."""

    API_KEY = 49

    def __init__(self, entries: list[tuple[Any, ...]]) -> None:
        self._entries = entries

    def build(self, request_struct_class: type[_AlterStruct]) -> _AlterStruct:
        return request_struct_class(self._entries, False, {})


def _check(code: int, message: str | None, what: str) -> None:
    check_admin_answer(code, message, what, "quota_failed")


async def describe_quotas(admin: AIOKafkaAdminClient, user: str) -> dict[str, float]:
    """The quota values the cluster holds for ``user`` (empty: none set)."""
    response = await admin._send_request(_Describe(user))
    _check(response.error_code, response.error_message, f"describing the quotas of {user}")
    found: dict[str, float] = {}
    for entity, values, _ in response.entries or []:
        if [(kind, name) for kind, name, _ in entity] == [(_USER, user)]:
            found.update({key: value for key, value, _ in values})
    return found


async def set_quotas(admin: AIOKafkaAdminClient, quotas: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Set each user's quota values (``{user: {key: value}}``); returns the users set."""
    entries: list[tuple[Any, ...]] = [
        ([(_USER, user, {})], [(key, float(value), False, {}) for key, value in values.items()], {})
        for user, values in quotas.items()
    ]
    if not entries:
        return []
    response = await admin._send_request(_Alter(entries))
    for code, message, entity, _ in response.entries:
        _check(code, message, f"setting the quotas of {entity[0][1] if entity else '?'}")
    return list(quotas)


async def apply_quotas(
    admin: AIOKafkaAdminClient, registry: Registry, agencies: Iterable[str] = ()
) -> dict[str, float]:
    """Give every member agency of ``registry`` (and any of ``agencies``, e.g. members the
    local registry knows) the quotas of ``registry``'s policy; returns the values set."""
    values = quotas_of(registry.policy)
    users = dict.fromkeys([*registry.agencies, *agencies])
    await set_quotas(admin, {user: values for user in users})
    log.info("client quotas applied", registry_version=registry.version, agencies=len(users), **values)
    return values
