"""The lifecycle rules on their own: one signed event through ``Rules.decide`` (no Kafka,
no ledger), for the table-driven tests of each kind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jointbus.schemas.catalog import parse_payload
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import envelope_of
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Aggregate, Decision, Rules
from tests.samples import SAMPLES

#: a pinned moment (evening UTC, already the next day in China), and keys valid from a day before
NOW = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))


def decide(
    aggregate: Aggregate | None,
    sender: str,
    family: str,
    to: list[str],
    subject: str,
    payload: dict[str, Any] | None = None,
    *,
    lookup: Callable[[str], Aggregate | None] = lambda _: None,
) -> tuple[Aggregate | None, Decision]:
    """``sender`` signs ``family`` (its sample payload unless given) on ``subject`` at NOW;
    the rules decide it against ``aggregate`` (sealed payloads stay unread, as the router's)."""
    env = envelope_of(
        compose(
            keyring=RINGS[sender],
            registry=REGISTRY,
            event_type=family,
            subject=subject,
            recipients=to,
            payload=payload or SAMPLES[family],
            now=NOW,
        )
    ).envelope
    data = None if env.sealed else parse_payload(env.type, env.data)
    return Rules().decide(aggregate, env, family, data, registry=REGISTRY, lookup=lookup)
