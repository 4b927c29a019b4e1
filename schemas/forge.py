"""Deterministic signed events for test vectors: fixed keys, ids and times, and sealed
payloads kept stable across regenerations.

Ed25519 is deterministic; HPKE is not (each seal draws a fresh ephemeral key). So that
``jointbus schemas write`` rewrites the vector files only when something really changed,
the forge reuses a sealed payload from the previous file when it still opens, for the same
recipients' keys, to the same plaintext.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointbus.schemas.catalog import spec_of, type_of
from jointbus.schemas.compose import payload_json
from jointbus.schemas.envelope import PLAIN_CONTENT_TYPE, SEALED_CONTENT_TYPE, source_of
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import format_time, uuid7_from
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import open_sealed, seal
from jointbus.schemas.signing import sign_envelope
from jointbus.schemas.vectors import VECTOR_TIME, seed


def signing_key(kid: str) -> Ed25519PrivateKey:
    """The vector private key ``kid`` (its seed is public: see ``schemas.vectors.seed``)."""
    return Ed25519PrivateKey.from_private_bytes(seed(kid))


def opening_key(kid: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(seed(kid))


class Forge:
    """Signs vector events under ``registry`` with the seed-derived keys."""

    def __init__(
        self, registry: Registry, previous_seals: Mapping[str, dict[str, Any]] | None = None
    ) -> None:
        self.registry = registry
        self.previous_seals = dict(previous_seals or {})
        #: every sealed payload made, by the event id it was sealed for (kept in the suite
        #: file, so a tampered or transplanted copy regenerates from the same original)
        self.made: dict[str, dict[str, Any]] = {}
        self.count = 0

    def next_id(self, at: datetime = VECTOR_TIME) -> str:
        """A fresh UUIDv7 whose time is ``at`` (ids differ by a counter, not by chance)."""
        self.count += 1
        return uuid7_from(at, f"jointbus vector event {self.count}".encode())

    def unsigned(
        self,
        sender: str,
        family: str,
        subject: str,
        to: list[str],
        payload: Mapping[str, Any],
        *,
        at: datetime = VECTOR_TIME,
        version: int | None = None,
        correlation: str | None = None,
        causation: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """An envelope without ``sigkeyid``/``signature``; sealed when its type is sensitive.
        The payload is not checked: negative vectors carry wrong ones on purpose."""
        event_type = type_of(family) if version is None else f"org.jointbus.{family}.v{version}"
        try:
            sensitive = spec_of(event_type).sensitive
        except ContractError:  # a type outside the catalog (negative vectors): sent plain
            sensitive = False
        event_id = event_id or self.next_id(at)
        data = payload_json(dict(payload))
        if sensitive:
            data = self.sealed(data, event_id, to, at)
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": source_of(sender),
            "type": event_type,
            "subject": subject,
            "time": format_time(at),
            "datacontenttype": SEALED_CONTENT_TYPE if sensitive else PLAIN_CONTENT_TYPE,
            "recipients": list(to),
            "correlationid": correlation or event_id,
            "data": data,
        }
        if causation is not None:
            body["causationid"] = causation
        return body

    def sealed(self, plain: dict[str, Any], event_id: str, to: list[str], at: datetime) -> dict[str, Any]:
        """``plain`` sealed to ``to``'s current sealing keys."""
        return self.seal_with(plain, event_id, [(a, self.registry.sealing_key(a, at)[0]) for a in to])

    def seal_with(
        self, plain: dict[str, Any] | bytes, event_id: str, wraps: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """``plain`` (an object, or the plaintext bytes themselves: negative vectors seal
        what is no payload) sealed for each (agency, kid) with the vector key ``kid`` (right
        or wrong: negative vectors seal to the wrong key on purpose); the previous file's
        seal when it still opens to the same plaintext for the same wraps."""
        if isinstance(plain, bytes):
            plaintext = plain
        else:
            plaintext = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()
        data = self.previous_seals.get(event_id)
        if data is None or not _opens_to(data, event_id, wraps, plaintext):
            data = seal(plaintext, event_id, [(a, kid, opening_key(kid).public_key()) for a, kid in wraps])
        self.made[event_id] = data
        return data

    def sign(self, body: dict[str, Any], kid: str | None = None) -> dict[str, Any]:
        """``body`` signed with ``kid`` (default: the sender's current signing key)."""
        if kid is None:
            owner = body["source"].removeprefix("urn:jointbus:")
            kid = self.registry.current_key(owner, "sign", VECTOR_TIME).kid
        return sign_envelope(body, signing_key(kid), kid)

    def event(
        self, sender: str, family: str, subject: str, to: list[str], payload: Mapping[str, Any], **kw: Any
    ) -> dict[str, Any]:
        """A signed envelope (``unsigned`` then ``sign``)."""
        kid = kw.pop("kid", None)
        return self.sign(self.unsigned(sender, family, subject, to, payload, **kw), kid)


def _opens_to(data: dict[str, Any], event_id: str, keys: list[tuple[str, str]], plaintext: bytes) -> bool:
    wrapped = [(w.get("agency"), w.get("kid")) for w in data.get("recipients", [])]
    if wrapped != keys:
        return False
    agency, kid = keys[0]
    try:
        opened = open_sealed(data, event_id, agency, {kid: opening_key(kid)})
    except ContractError:
        return False
    return opened == plaintext


def previous_seals(document: Any) -> dict[str, dict[str, Any]]:
    """Every sealed ``data`` in a previous vector document, by event id (any nesting)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("datacontenttype") == SEALED_CONTENT_TYPE and isinstance(value.get("data"), dict):
                found[str(value.get("id"))] = value["data"]
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)
        elif isinstance(value, str) and value.startswith("{") and SEALED_CONTENT_TYPE in value:
            with contextlib.suppress(ValueError):
                walk(json.loads(value))

    walk(document)
    if isinstance(document, dict) and isinstance(document.get("seals"), dict):
        found |= document["seals"]
    return found
