"""Hostile events the demo sends through agencies' own outboxes; the router must reject each
(forged signature, posing as the router, replay, lifecycle, past deadline, unknown
recipient).

The builders below forge one attack each, for any sender and recipients, so the demo and
the router tests (tests/test_router.py) send the very same attacks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from jointbus.federation import Federation, subject
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.schemas.signing import sign_envelope
from jointbus.story import china_today

Envelope = dict[str, Any]
#: the rectification the attacks forge or misuse
ISSUE = {"responsible_unit": "某单位", "problem": "伪造的整改要求", "deadline": "2099-01-01"}
#: an agency that is no member of any development federation
STRANGER = "sc-chengdu"


def signed_event(
    registry: Registry,
    ring: Keyring,
    now: datetime,
    family: str,
    to: list[str],
    payload: dict[str, Any],
    s: str | None = None,
) -> Envelope:
    """A genuine event of ``ring``'s owner (a fresh subject unless ``s``)."""
    return compose(
        keyring=ring,
        registry=registry,
        event_type=family,
        subject=s or subject(family.split(".")[0]),
        recipients=to,
        payload=payload,
        now=now,
    )


def forged_signature(
    registry: Registry, rings: dict[str, Keyring], now: datetime, sender: str, forger: str, to: list[str]
) -> Envelope:
    """``sender``'s rectification signed with ``forger``'s key under ``sender``'s key id:
    rejected as ``bad_signature``."""
    forged = signed_event(registry, rings[sender], now, "rectification.issued", to, ISSUE)
    return sign_envelope(forged, rings[forger].signer(registry, now)[1], forged["sigkeyid"])


def posing_as_router(
    registry: Registry, rings: dict[str, Keyring], now: datetime, sender: str, to: list[str]
) -> Envelope:
    """A rejection notice (the router's type) signed by ``sender``: ``not_authorized``."""
    posing = signed_event(
        registry, rings[sender], now, "clue.acknowledged", to, {"note": "x"}, s=f"notice/{uuid.uuid4()}"
    )
    posing.update(
        type="org.jointbus.rejection.v1",
        data={
            "rejected_event_id": "x",
            "rejected_type": "y",
            "reason": "bad_signature",
            "detail": "fake",
        },
    )
    kid, key = rings[sender].signer(registry, now)
    return sign_envelope(posing, key, kid)


def early_disposition(
    registry: Registry, rings: dict[str, Keyring], now: datetime, sender: str, to: list[str], clue: str
) -> Envelope:
    """``sender`` reports the disposition of clue ``clue`` it never accepted:
    ``bad_transition``."""
    payload = {"disposition": "closed_other", "summary": "未受理即报结"}
    return signed_event(registry, rings[sender], now, "clue.disposition_reported", to, payload, s=clue)


def past_deadline(
    registry: Registry, rings: dict[str, Keyring], now: datetime, sender: str, to: list[str]
) -> Envelope:
    """A rectification whose deadline passed yesterday: ``bad_transition``."""
    late = {**ISSUE, "deadline": (china_today() - timedelta(days=1)).isoformat()}
    return signed_event(registry, rings[sender], now, "rectification.issued", to, late)


def unknown_recipient(
    registry: Registry, rings: dict[str, Keyring], now: datetime, sender: str, to: list[str]
) -> Envelope:
    """A rectification composed for ``to``, then readdressed to a non-member and signed
    again by ``sender``: ``unknown_recipient``."""
    wrong = signed_event(registry, rings[sender], now, "rectification.issued", to, ISSUE)
    wrong["recipients"] = [STRANGER]
    kid, key = rings[sender].signer(registry, now)
    return sign_envelope(wrong, key, kid)


async def play_attacks(fed: Federation, progress: Callable[[str], None]) -> None:
    """Forged, replayed and unauthorized events, which the router must reject."""
    reg, rings, now = fed.registry, fed.rings, utcnow()

    await fed.attack(
        "sc-luzhou",
        forged_signature(reg, rings, now, "sc-luzhou", "cq-jiangjin", ["cq-dazu"]),
        "bad_signature",
    )
    progress("attack: forged signature → rejected")

    await fed.attack("cq-dazu", posing_as_router(reg, rings, now, "cq-dazu", ["sc-zigong"]), "not_authorized")
    progress("attack: agency posing as the router → rejected")

    original = signed_event(reg, rings["sc-yibin"], now, "rectification.issued", ["cq-yongchuan"], ISSUE)
    await (await fed.pubs["sc-yibin"].send_wire(to_wire(original), original["subject"]))
    await fed.wait_for("cq-yongchuan", lambda d: d.id == original["id"])
    await fed.attack("sc-yibin", original, "duplicate")
    progress("attack: replayed event → rejected")

    s = subject("clue")
    await fed.send(
        "sc-luzhou",
        "clue.transferred",
        s,
        ["cq-rongchang"],
        {
            "title": "荣昌某项目围标串标",
            "summary": "举报材料",
            "allegations": ["围标串标"],
            "persons": [{"name": "孙某", "unit": "荣昌某公司"}],
            "jurisdiction_basis": "荣昌区管理",
            "acknowledge_by": china_today().isoformat(),
        },
    )
    await fed.send("cq-rongchang", "clue.acknowledged", s, ["sc-luzhou"], {"note": "已收到"})
    early = early_disposition(reg, rings, now, "cq-rongchang", ["sc-luzhou"], s)
    await fed.attack("cq-rongchang", early, "bad_transition")
    progress("attack: disposition of a clue never accepted → rejected")

    await fed.attack("sc-yibin", past_deadline(reg, rings, now, "sc-yibin", ["sc-zigong"]), "bad_transition")
    progress("attack: rectification whose deadline has already passed → rejected")

    wrong = unknown_recipient(reg, rings, now, "cq-jiangjin", ["sc-zigong"])
    await fed.attack("cq-jiangjin", wrong, "unknown_recipient")
    progress("attack: unknown recipient → rejected")
