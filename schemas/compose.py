"""Building signed (and, for sensitive types, sealed) envelopes: the publisher's side."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jointbus.schemas.catalog import Payload, parse_payload, spec_of, type_of
from jointbus.schemas.envelope import PLAIN_CONTENT_TYPE, SEALED_CONTENT_TYPE, source_of
from jointbus.schemas.ids import format_time, utcnow, uuid7
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import seal
from jointbus.schemas.signing import sign_envelope


def payload_json(payload: Payload | dict[str, Any]) -> dict[str, Any]:
    """The JSON object of a payload model (dates as ISO strings, no nulls)."""
    if isinstance(payload, Payload):
        return payload.model_dump(mode="json", exclude_none=True)
    return payload


def compose(
    *,
    keyring: Keyring,
    registry: Registry,
    event_type: str,
    subject: str,
    recipients: list[str],
    payload: Payload | dict[str, Any],
    correlationid: str | None = None,
    causationid: str | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A signed envelope dict from ``keyring.owner``; sealed to ``recipients`` when sensitive.

    ``event_type`` is a full type name or a family (``clue.transferred``: newest version).
    The payload is validated first, so a publisher finds its mistakes before the router does.
    """
    if not event_type.startswith("org."):
        event_type = type_of(event_type)
    spec = spec_of(event_type)
    data = payload_json(payload)
    parse_payload(event_type, data)
    now = now or utcnow()
    event_id = event_id or uuid7(int(now.timestamp() * 1000))  # its time is the event's time
    if spec.sensitive:
        plaintext = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        keys = [(r, *registry.sealing_key(r, now)) for r in recipients]
        data = seal(plaintext, event_id, keys)
    unsigned = {
        "specversion": "1.0",
        "id": event_id,
        "source": source_of(keyring.owner),
        "type": event_type,
        "subject": subject,
        "time": format_time(now),
        "datacontenttype": SEALED_CONTENT_TYPE if spec.sensitive else PLAIN_CONTENT_TYPE,
        "recipients": list(recipients),
        "correlationid": correlationid or event_id,
        "causationid": causationid,
        "data": data,
    }
    kid, key = keyring.signer(registry, now)
    return sign_envelope(unsigned, key, kid)
