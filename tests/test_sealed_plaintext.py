"""A sealed payload the router cannot read: whatever plaintext a signed, correctly sealed
event carries, every reader decides it the same way (accepted, or refused with one reason
code) and goes on. In memory: the Subscriber's judge, the conformance reference bus and
``jointbus verify --open-as`` on one table of hostile plaintexts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jointbus.conformancecli import verify_command
from jointbus.schemas.compose import compose
from jointbus.schemas.conformance import ReferenceBus
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.ids import format_time, utcnow
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.opening import MAX_PLAINTEXT_DEPTH, decode_plaintext
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import seal
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.judge import Accepted, InboxJudge, Refused
from tests.samples import SAMPLES

NOW = utcnow()
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
SENDER, RECIPIENT = "sc-zigong", "cq-yongchuan"
CLUE = SAMPLES["clue.transferred"]


def clue_text(**changes: Any) -> str:
    """The honest clue's JSON text with ``changes`` applied (a field set to ``...`` is dropped)."""
    data = {k: v for k, v in {**CLUE, **changes}.items() if v is not ...}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sealed_clue(
    plaintext: bytes,
    *,
    registry: Registry = REGISTRY,
    rings: dict[str, Keyring] = RINGS,
    sender: str = SENDER,
    to: str = RECIPIENT,
    subject: str | None = None,
    broken: bool = False,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A clue transfer from ``sender`` to ``to``, correctly signed and sealed, whose sealed
    plaintext is ``plaintext`` as it is (``broken``: encrypted to another agency's key, so
    it does not open; ``at``: its time, default now)."""
    now = at or utcnow()
    env = compose(
        keyring=rings[sender],
        registry=registry,
        event_type="clue.transferred",
        subject=subject or f"clue/{now.timestamp():.6f}",
        recipients=[to],
        payload=CLUE,
        now=now,
    )
    kid, key = registry.sealing_key(to, now)
    if broken:
        key = registry.sealing_key("sc-yibin", now)[1]
    env["data"] = seal(plaintext, env["id"], [(to, kid, key)])
    signer, private = rings[sender].signer(registry, now)
    return sign_envelope(env, private, signer)


#: plaintexts a hostile (or buggy) sender seals: each refused as a plain payload would be
HOSTILE: dict[str, bytes] = {
    "not-json": b"not json",
    "empty": b"",
    "null-field": clue_text(title=None).encode(),
    "nan": clue_text().replace('"title":', '"extra_nan":NaN,"title":', 1).encode(),
    "nan-value": clue_text()
    .replace(f'"title":{json.dumps(CLUE["title"], ensure_ascii=False)}', '"title":NaN')
    .encode(),
    "float": clue_text(title=1.5).encode(),
    "extra-field": clue_text(smuggled="x").encode(),
    "duplicate-key": clue_text()[:-1].encode() + b',"title":"second reading"}',
    "deep-nesting": clue_text(allegations=["x"]).replace('["x"]', "[" * 40 + '"x"' + "]" * 40).encode(),
    "huge-integer": clue_text(title=2**60).encode(),
    "invalid-utf8": clue_text(title="AAAA").replace("AAAA", "\udcff", 1).encode("utf-8", "surrogateescape"),
    "lone-surrogate": clue_text(title="AAAA").replace("AAAA", "\\ud800").encode(),
    "wrong-type": clue_text(title=5).encode(),
    "missing-field": clue_text(title=...).encode(),
    "array": b"[1,2,3]",
    "string": b'"a clue"',
    "bom": b"\xef\xbb\xbf" + clue_text().encode(),
    "too-large": b'{"title":"' + b"x" * (300 * 1024) + b'"}',
}


def judged(wire: bytes) -> tuple[str, str | None]:
    """The Subscriber's verdict (its pure judge) on ``wire`` delivered to the recipient."""
    judge = InboxJudge(RECIPIENT, RINGS[RECIPIENT].openers(), REGISTRY)
    verdict = judge.judge(wire, int(utcnow().timestamp() * 1000))
    if isinstance(verdict, Accepted):
        return "accepted", None
    assert isinstance(verdict, Refused), verdict
    return "rejected", verdict.reason


def referenced(wire: bytes) -> tuple[str, str | None]:
    """The conformance reference bus's verdict (what `verify --open-as` prints)."""
    (kid,) = RINGS[RECIPIENT].openers()
    got = ReferenceBus(REGISTRY, utcnow()).receive(wire, RECIPIENT, kid, RINGS[RECIPIENT].keys[kid])
    return got.verdict, got.reason


def test_every_hostile_plaintext_is_refused_as_schema_by_the_one_decoder() -> None:
    """The rule (wire-format §4): what opens but is no payload is ``schema``."""
    for name, plaintext in HOSTILE.items():
        with pytest.raises(ContractError) as caught:
            decode_plaintext("org.jointbus.clue.transferred.v2", plaintext)
        assert caught.value.reason == Reason.SCHEMA, name


def test_sealed_hostile_plaintexts_get_one_verdict_from_every_reader(tmp_path: Path) -> None:
    """The Subscriber's judge, the reference bus and `jointbus verify --open-as` agree on
    every hostile plaintext (refused: ``schema``), an honest one (accepted) and a seal that
    does not open (``seal_broken``)."""
    cases = {name: sealed_clue(p) for name, p in HOSTILE.items()}
    cases["honest"] = sealed_clue(clue_text().encode())
    cases["unopenable"] = sealed_clue(clue_text().encode(), broken=True)
    expected = {name: ("rejected", "schema") for name in HOSTILE}
    expected |= {"honest": ("accepted", None), "unopenable": ("rejected", "seal_broken")}
    expected["too-large"] = ("rejected", "too_large")  # its seal does not fit in an envelope

    registry_file = tmp_path / "registry.json"
    registry_file.write_text(REGISTRY.model_dump_json(), encoding="utf-8")
    (kid,) = RINGS[RECIPIENT].openers()
    key_file = tmp_path / "key"
    key_file.write_text(RINGS[RECIPIENT].keys[kid], encoding="utf-8")
    files = []
    for name, env in cases.items():
        (tmp_path / name).write_bytes(to_wire(env))
        files.append(str(tmp_path / name))
    at = ["--at", format_time(utcnow())]
    opened = ["--open-as", RECIPIENT, "--key", str(key_file), "--registry", str(registry_file)]
    done = CliRunner().invoke(verify_command, [*opened, *at, "--json", *files])
    assert done.exception is None or isinstance(done.exception, SystemExit), done.output
    cli = {
        Path(v["file"]).name: (v["verdict"], v.get("reason"))
        for v in map(json.loads, done.output.splitlines())
    }

    for name, env in cases.items():
        wire = to_wire(env)
        assert judged(wire) == expected[name], f"{name}: the Subscriber's judge"
        assert referenced(wire) == expected[name], f"{name}: the reference bus"
        assert cli[name] == expected[name], f"{name}: jointbus verify --open-as"


def test_plaintext_depth_and_size_bounds_match_a_plain_payload() -> None:
    """A payload nests one level less than its envelope: 15 levels open, 16 do not."""
    deepest = clue_text(allegations=["x"]).replace(
        '["x"]', "[" * (MAX_PLAINTEXT_DEPTH - 1) + '"x"' + "]" * (MAX_PLAINTEXT_DEPTH - 1)
    )
    too_deep = deepest.replace('"x"', '["x"]')
    details = []
    for text in (deepest, too_deep):  # both refused (allegations are strings), not alike
        with pytest.raises(ContractError) as caught:
            decode_plaintext("org.jointbus.clue.transferred.v2", text.encode())
        assert caught.value.reason == Reason.SCHEMA
        details.append(caught.value.message)
    assert "nests deeper" not in details[0], details[0]
    assert "allegations" in details[0], details[0]
    assert "nests deeper" in details[1], details[1]
