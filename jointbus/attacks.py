"""Hostile events the demo sends through agencies' own outboxes; the router must reject each
(forged signature, posing as the router, replay, lifecycle, past deadline, unknown
recipient)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jointbus.federation import Federation, subject
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.signing import sign_envelope
from jointbus.story import china_today


async def play_attacks(fed: Federation, progress: Callable[[str], None]) -> None:
    """Forged, replayed and unauthorized events, which the router must reject."""
    reg, rings, now = fed.registry, fed.rings, utcnow()

    def event(
        agency: str, family: str, to: list[str], payload: dict[str, Any], s: str | None = None
    ) -> dict[str, Any]:
        return compose(
            keyring=rings[agency],
            registry=reg,
            event_type=family,
            subject=s or subject("rectification"),
            recipients=to,
            payload=payload,
            now=now,
        )

    issue = {"responsible_unit": "某单位", "problem": "伪造的整改要求", "deadline": "2099-01-01"}
    forged = event("sc-luzhou", "rectification.issued", ["cq-dazu"], issue)
    forged = sign_envelope(forged, rings["cq-jiangjin"].signer(reg, now)[1], forged["sigkeyid"])
    await fed.attack("sc-luzhou", forged, "bad_signature")
    progress("attack: forged signature → rejected")

    posing = event("cq-dazu", "clue.acknowledged", ["sc-zigong"], {"note": "x"}, s=f"notice/{uuid.uuid4()}")
    posing.update(
        type="org.jointbus.rejection.v1",
        data={
            "rejected_event_id": "x",
            "rejected_type": "y",
            "reason": "bad_signature",
            "detail": "fake",
        },
    )
    kid, key = rings["cq-dazu"].signer(reg, now)
    await fed.attack("cq-dazu", sign_envelope(posing, key, kid), "not_authorized")
    progress("attack: agency posing as the router → rejected")

    original = event("sc-yibin", "rectification.issued", ["cq-yongchuan"], issue)
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
    early = event(
        "cq-rongchang",
        "clue.disposition_reported",
        ["sc-luzhou"],
        {"disposition": "closed_other", "summary": "未受理即报结"},
        s=s,
    )
    await fed.attack("cq-rongchang", early, "bad_transition")
    progress("attack: disposition of a clue never accepted → rejected")

    late = {**issue, "deadline": (china_today() - timedelta(days=1)).isoformat()}
    await fed.attack(
        "sc-yibin", event("sc-yibin", "rectification.issued", ["sc-zigong"], late), "bad_transition"
    )
    progress("attack: rectification whose deadline has already passed → rejected")

    wrong = event("cq-jiangjin", "rectification.issued", ["sc-zigong"], issue)
    wrong["recipients"] = ["sc-chengdu"]
    kid, key = rings["cq-jiangjin"].signer(reg, now)
    await fed.attack("cq-jiangjin", sign_envelope(wrong, key, kid), "unknown_recipient")
    progress("attack: unknown recipient → rejected")
