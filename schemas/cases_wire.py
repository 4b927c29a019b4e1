"""Conformance cases of the wire format: JSON, envelope, signature, keys, clock, rights,
payloads and seals. Each negative case breaks exactly one rule, so its reason code does
not depend on the order of the checks; each is named after what it stops.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jointbus.schemas.b64 import b64e
from jointbus.schemas.cases_base import (
    MS,
    OK,
    CaseBook,
    T,
    example,
    example_version,
    refused,
    replacing,
    sign_exactly,
    with_trailing_bit,
)
from jointbus.schemas.conformance import Verdict
from jointbus.schemas.envelope import MAX_DEPTH, MAX_ENVELOPE_BYTES, MAX_STRUCTURE, structure_size, to_wire
from jointbus.schemas.errors import Reason
from jointbus.schemas.forge import signing_key
from jointbus.schemas.ids import format_time, uuid7_from


class WireCases(CaseBook):
    """The cases of docs/wire-format.md §1–§5."""

    def json_text(self) -> None:
        """§2 JSON rules: one value, one reading."""
        rule = "§2 JSON"
        signed = self.sign(self.invitation())
        self.add(
            "json/truncated",
            rule,
            "a cut record read as an event",
            self.route(to_wire(signed)[:120], refused(Reason.SCHEMA), outbox="sc-yibin"),
        )
        self.add(
            "json/invalid-utf8",
            rule,
            "bytes two decoders read differently",
            self.route(signed, refused(Reason.SCHEMA), mutate=replacing(b'"scope":"', b'"scope":"\xff')),
        )
        dup = self.sign(self.invitation())
        self.add(
            "json/duplicate-key",
            rule,
            "two parsers reading two different types (first or last key wins)",
            self.route(
                dup,
                refused(Reason.SCHEMA),
                mutate=replacing(b'"type":', b'"type":"org.jointbus.bulletin.posted.v1","type":'),
            ),
        )
        self.add(
            "json/not-an-object",
            rule,
            "an array passed off as an event",
            self.route(
                b"[" + to_wire(self.sign(self.invitation())) + b"]", refused(Reason.SCHEMA), outbox="sc-yibin"
            ),
        )
        for name, new, attack in (
            (
                "json/float-integer",
                b'"sc-zigong":2.0',
                "a second wire form of a signed integer (RFC 8785 writes 2.0 as 2)",
            ),
            ("json/exponent-integer", b'"sc-zigong":2e0', "a second wire form of a signed integer"),
            (
                "json/unsafe-integer",
                b'"sc-zigong":9007199254740993',
                "an integer two implementations round differently",
            ),
            ("json/nan", b'"sc-zigong":NaN', "a number that is not JSON"),
        ):
            self.add(
                name,
                rule,
                attack,
                self.route(
                    self.sign(self.invitation()),
                    refused(Reason.SCHEMA),
                    mutate=replacing(b'"sc-zigong":2', new),
                ),
            )
        zero = example("jointcheck.invited") | {"staff_requested": {"sc-zigong": 0, "sc-neijiang": 2}}
        self.add(
            "json/minus-zero",
            rule,
            "a second wire form of a signed integer (-0 canonicalizes to 0)",
            self.route(
                self.sign(self.invitation(zero)),
                refused(Reason.SCHEMA),
                mutate=replacing(b'"sc-zigong":0', b'"sc-zigong":-0'),
            ),
        )
        self.add(
            "json/lone-surrogate",
            rule,
            "a string with no UTF-8 form, so no canonical bytes",
            self.route(
                self.sign(self.invitation()),
                refused(Reason.SCHEMA),
                mutate=replacing(b'"scope":"', b'"scope":"\\ud800'),
            ),
        )
        depths = ((16, Reason.SCHEMA, "json/depth-16-passes"), (17, Reason.TOO_DEEP, "json/depth-17"))
        for levels, expect, name in depths:
            body = self.invitation()
            nested: list[Any] = []
            for _ in range(levels - 3):  # the envelope is level 1, data 2, the outer list 3
                nested = [nested]
            body["data"] = {"x": nested} | body["data"]
            self.add(
                name,
                "§2 nesting",
                "a parser or canonicalizer exhausted by nesting (16 levels pass the depth check, "
                "then fail the payload schema: the field is unknown)",
                self.route(sign_exactly(body, "sc-yibin#sig-1"), refused(expect)),
            )
        wire = to_wire(self.sign(self.invitation()))
        self.add(
            "size/at-limit",
            "§2 size",
            "an event of exactly the limit refused (off by one)",
            self.route(wire + b" " * (MAX_ENVELOPE_BYTES - len(wire)), OK, outbox="sc-yibin"),
        )
        wire = to_wire(self.sign(self.invitation()))
        self.add(
            "size/over-limit",
            "§2 size",
            "memory and log space exhausted by one record",
            self.route(
                wire + b" " * (MAX_ENVELOPE_BYTES + 1 - len(wire)),
                refused(Reason.TOO_LARGE),
                outbox="sc-yibin",
            ),
        )

    def envelope(self) -> None:
        """§2 envelope attributes."""
        rule = "§2 envelope"
        kid = "sc-yibin#sig-1"

        def bad(
            name: str, attack: str, change: Callable[[dict[str, Any]], None], reason: str = Reason.SCHEMA
        ) -> None:
            body = self.invitation()
            change(body)
            self.add(
                name, rule, attack, self.route(sign_exactly(body, kid), refused(reason), outbox="sc-yibin")
            )

        bad(
            "envelope/null-causationid",
            "two wire forms of one event (null or omitted)",
            lambda b: b.update(causationid=None),
        )
        bad(
            "envelope/unknown-attribute",
            "an attribute some readers act on and others ignore",
            lambda b: b.update(priority="urgent"),
        )
        bad(
            "envelope/missing-correlationid",
            "an event outside any conversation",
            lambda b: b.pop("correlationid"),
        )
        bad(
            "envelope/specversion",
            "another CloudEvents version read as 1.0",
            lambda b: b.update(specversion="1.1"),
        )
        bad(
            "envelope/time-with-offset",
            "two texts for one instant",
            lambda b: b.update(time="2026-03-01T16:30:00.000+08:00"),
        )
        bad(
            "envelope/time-without-milliseconds",
            "two texts for one instant",
            lambda b: b.update(time="2026-03-01T08:30:00Z"),
        )
        bad(
            "envelope/id-uppercase",
            "two texts for one id, dodging duplicate detection",
            lambda b: b.update(id=b["id"].upper()),
        )
        bad(
            "envelope/id-not-uuid7",
            "ids chosen to collide or to dodge duplicate detection",
            lambda b: b.update(id="6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"),
        )
        bad(
            "envelope/id-variant-bits",
            "an id outside the UUID variant, read differently by UUID libraries",
            lambda b: b.update(id=b["id"][:19] + "0" + b["id"][20:]),
        )
        bad(
            "envelope/id-time-5001ms-off",
            "an id whose time is beyond the 5 s tolerance",
            lambda b: b.update(id=uuid7_from(T - 5001 * MS, b"late")),
        )
        near = self.forge.unsigned(
            "sc-yibin", "jointcheck.invited", self.subject("jointcheck"), ["sc-zigong", "sc-neijiang"],
            example("jointcheck.invited"), event_id=uuid7_from(T - 5000 * MS, b"near"),
        )  # fmt: skip
        self.add(
            "envelope/id-time-5000ms-off",
            rule,
            "an id refused at the edge of the 5 s tolerance (the bound is inclusive)",
            self.route(self.sign(near)),
        )
        bad(
            "envelope/id-time-disagrees",
            "an old id replayed under a new time",
            lambda b: b.update(id=uuid7_from(T - timedelta(minutes=1), b"old")),
        )
        bad(
            "envelope/no-recipients",
            "an event delivered to nobody, yet logged as sent",
            lambda b: b.update(recipients=[]),
        )
        bad(
            "envelope/not-a-type-name",
            "a type outside the catalog's naming",
            lambda b: b.update(type="jointcheck.invited"),
        )
        signed = self.sign(self.invitation())
        self.add(
            "envelope/padded-signature",
            rule,
            "two texts for one signature",
            self.route(
                signed,
                refused(Reason.SCHEMA),
                mutate=replacing(signed["signature"].encode(), signed["signature"].encode() + b"=="),
            ),
        )
        bad(
            "type/unknown-family",
            "§3 known type",
            lambda b: b.update(type="org.jointbus.clue.forwarded.v1"),
            Reason.UNKNOWN_TYPE,
        )
        bad(
            "type/unknown-version",
            "§3 known type",
            lambda b: b.update(type="org.jointbus.clue.transferred.v3"),
            Reason.UNKNOWN_TYPE,
        )

    def signatures(self) -> None:
        """§3 signature and sender."""
        rule = "§3 signature"
        body = self.forge.unsigned(
            "sc-chengdu",
            "bulletin.posted",
            self.subject("bulletin"),
            ["sc-zigong"],
            example("bulletin.posted"),
        )
        self.add(
            "sender/unknown-member",
            rule,
            "an outsider publishing as a member",
            self.route(sign_exactly(body, "sc-chengdu#sig-1"), refused(Reason.UNKNOWN_SENDER)),
        )
        self.add(
            "key/unregistered",
            rule,
            "a key nobody registered",
            self.route(self.sign(self.invitation(), "sc-yibin#sig-9"), refused(Reason.UNKNOWN_KEY)),
        )
        self.add(
            "key/another-members-key",
            rule,
            "one agency signing as another with its own key",
            self.route(self.sign(self.invitation(), "sc-zigong#sig-1"), refused(Reason.UNKNOWN_KEY)),
        )
        signed = self.sign(self.invitation())
        redirected = dict(signed, recipients=["sc-zigong", "sc-neijiang", "cq-dazu"])
        self.add(
            "signature/recipient-added",
            rule,
            "an event redirected to another agency after signing",
            self.route(redirected, refused(Reason.BAD_SIGNATURE)),
        )
        signed = self.sign(self.invitation())
        self.add(
            "signature/time-changed",
            rule,
            "an event re-dated after signing",
            self.route(dict(signed, time=format_time(T + 2 * MS)), refused(Reason.BAD_SIGNATURE)),
        )
        signed = self.sign(self.invitation())
        twin = with_trailing_bit(signed["signature"])
        self.add(
            "signature/trailing-bits",
            "§3 canonical base64url",
            "a second text for the same signature bytes",
            self.route(dict(signed, signature=twin), refused(Reason.BAD_SIGNATURE)),
        )
        body = self.invitation()
        self.add(
            "signature/other-bytes-signed",
            rule,
            "a signature over a re-serialized, not the canonical, form",
            self.route(
                dict(
                    body,
                    sigkeyid="sc-yibin#sig-1",
                    signature=b64e(signing_key("sc-yibin#sig-1").sign(to_wire(body))),
                ),
                refused(Reason.BAD_SIGNATURE),
            ),
        )
        clue = self.sign(self.clue())
        data = dict(clue["data"], ciphertext=clue["data"]["ciphertext"][:-4] + "AAAA")
        self.add(
            "signature/sealed-data-changed",
            rule,
            "a sealed payload swapped on the way (the router cannot read it, but the signature covers it)",
            self.route(dict(clue, data=data), refused(Reason.BAD_SIGNATURE)),
        )

    def keys(self) -> None:
        """§5 key windows: revocation judged at arrival, validity at the event's time."""
        forge = self.under("keys")
        rule = "§5 keys"

        def signed_with(kid: str) -> dict[str, Any]:
            return forge.sign(
                self.forge.unsigned(
                    "sc-zigong",
                    "bulletin.posted",
                    self.subject("bulletin"),
                    ["cq-yongchuan"],
                    example("bulletin.posted"),
                ),
                kid,
            )

        for name, kid, expect, attack in (
            (
                "key/revoked-before-time",
                "sc-zigong#sig-2",
                refused(Reason.KEY_REVOKED),
                "a stolen key still signing after its revocation",
            ),
            (
                "key/revoked-before-arrival",
                "sc-zigong#sig-3",
                refused(Reason.KEY_REVOKED),
                "a stolen key back-dating events to before its revocation",
            ),
            (
                "key/revoked-after-arrival",
                "sc-zigong#sig-4",
                OK,
                "events signed before a revocation refused (revocation is not retroactive)",
            ),
            (
                "key/not-yet-valid",
                "sc-zigong#sig-5",
                refused(Reason.KEY_EXPIRED),
                "a key used before its window",
            ),
            ("key/expired", "sc-zigong#sig-6", refused(Reason.KEY_EXPIRED), "a retired key still signing"),
            (
                "key/not-after-is-exclusive",
                "sc-zigong#sig-7",
                refused(Reason.KEY_EXPIRED),
                "a key used at the instant its window closes",
            ),
            (
                "key/not-before-is-inclusive",
                "sc-zigong#sig-8",
                OK,
                "a key refused at the instant its window opens",
            ),
        ):
            self.add(name, rule, attack, self.route(signed_with(kid), expect), registry="keys")
        clue = self.clue()
        clue["data"] = forge.seal_with(
            example("clue.transferred"), clue["id"], [("cq-yongchuan", "cq-yongchuan#seal-2")]
        )
        self.add(
            "seal/revoked-sealing-key",
            "§4 sealing key",
            "a clue sealed to a recipient key its thief holds",
            self.route(forge.sign(clue), refused(Reason.KEY_REVOKED)),
            registry="keys",
        )
        clue = self.clue()
        clue["data"] = forge.seal_with(
            example("clue.transferred"), clue["id"], [("cq-yongchuan", "cq-yongchuan#seal-3")]
        )
        self.add(
            "seal/expired-sealing-key",
            "§4 sealing key",
            "a clue sealed to a retired recipient key",
            self.route(forge.sign(clue), refused(Reason.KEY_EXPIRED)),
            registry="keys",
        )
        self.under("base")

    def clock(self) -> None:
        """§7 time rules, judged against the broker's append time."""
        rule = "§7 clock"
        for name, arrival, expect, attack in (
            (
                "clock/ahead-by-the-limit",
                T - timedelta(minutes=5),
                OK,
                "a fast clock refused within tolerance",
            ),
            (
                "clock/too-far-ahead",
                T - timedelta(minutes=5) - MS,
                refused(Reason.CLOCK_SKEW),
                "a pre-dated event",
            ),
            (
                "clock/behind-by-the-limit",
                T + timedelta(hours=1),
                OK,
                "a delayed sender refused within tolerance",
            ),
            (
                "clock/too-far-behind",
                T + timedelta(hours=1) + MS,
                refused(Reason.CLOCK_SKEW),
                "a back-dated event, signed before a revocation",
            ),
        ):
            self.add(
                name, rule, attack, self.route(self.sign(self.invitation()), expect), received_at=arrival
            )
        self.add(
            "clock/producer-chosen-time",
            "§7 untrusted_time",
            "a producer choosing the arrival time the time rules are judged by",
            self.route(self.sign(self.invitation()), refused(Reason.UNTRUSTED_TIME), log_append_time=False),
        )

    def rights(self) -> None:
        """§5 rights and §2 recipients."""
        rule = "§5 rights"
        forge = self.under("rights")
        self.add(
            "rights/glob-covers-family",
            rule,
            "a right refused (clue.* covers clue.transferred)",
            self.route(forge.sign(self.clue())),
            registry="rights",
        )
        body = forge.unsigned(
            "sc-zigong",
            "bulletin.posted",
            self.subject("bulletin"),
            ["cq-yongchuan"],
            example("bulletin.posted"),
        )
        self.add(
            "rights/family-not-granted",
            rule,
            "an agency publishing a kind it has no right to",
            self.route(forge.sign(body), refused(Reason.NOT_AUTHORIZED)),
            registry="rights",
        )
        body = forge.unsigned(
            "cq-dazu",
            "bulletin.posted",
            self.subject("bulletin"),
            ["cq-yongchuan"],
            example("bulletin.posted"),
        )
        self.add(
            "rights/suspended-member",
            "§5.1 suspension",
            "a suspended member still publishing",
            self.route(forge.sign(body), refused(Reason.NOT_AUTHORIZED)),
            registry="rights",
        )
        self.under("base")
        notice = self.forge.unsigned(
            "sc-yibin", "rejection", self.subject("notice"), ["sc-zigong"], example("rejection")
        )
        self.add(
            "rights/router-only-type",
            rule,
            "an agency forging the router's notice",
            self.route(self.sign(notice), refused(Reason.NOT_AUTHORIZED)),
        )
        self.add(
            "recipients/self",
            "§2 recipients",
            "a sender counting itself among the recipients",
            self.route(
                self.sign(
                    self.invitation(
                        to=["sc-yibin", "sc-zigong"],
                        payload=example("jointcheck.invited") | {"staff_requested": {"sc-zigong": 1}},
                    )
                ),
                refused(Reason.NOT_AUTHORIZED),
            ),
        )
        self.add(
            "recipients/unknown",
            "§2 recipients",
            "an event leaked to a non-member",
            self.route(
                self.sign(self.invitation(to=["sc-zigong", "sc-neijiang", "sc-chengdu"])),
                refused(Reason.UNKNOWN_RECIPIENT),
            ),
        )
        self.add(
            "recipients/twice",
            "§2 recipients",
            "one recipient counted twice",
            self.route(
                self.sign(self.invitation(to=["sc-zigong", "sc-neijiang", "sc-zigong"])),
                refused(Reason.DUPLICATE_RECIPIENT),
            ),
        )
        self.add(
            "router/wrong-outbox",
            "§1 outbox",
            "an event injected through another agency's outbox",
            self.route(self.sign(self.invitation()), refused(Reason.NOT_AUTHORIZED), outbox="sc-zigong"),
        )
        signed = self.sign(self.invitation())
        self.add(
            "router/replayed-event",
            "§7 duplicate",
            "a signed event replayed",
            self.route(signed),
            self.route(signed, refused(Reason.DUPLICATE)),
        )
        first = self.sign(self.invitation())
        again = self.sign(self.invitation(event_id=first["id"]))
        self.add(
            "router/id-reused",
            "§7 duplicate",
            "one id for two events (receipts and replay would confuse them)",
            self.route(first),
            self.route(again, refused(Reason.DUPLICATE)),
        )
        honest = self.sign(self.invitation())
        forged = dict(honest, recipients=["sc-zigong", "sc-neijiang", "cq-dazu"])
        self.add(
            "router/refused-event-takes-no-id",
            "§7 duplicate",
            "an honest event blocked by a forgery that used its id first (a refused check takes no id)",
            self.route(forged, refused(Reason.BAD_SIGNATURE)),
            self.route(honest),
        )
        stray = self.sign(
            self.forge.unsigned("cq-yongchuan", "clue.accepted", self.subject("clue"), ["sc-zigong"],
                                example("clue.accepted"))
        )  # fmt: skip
        reused = self.sign(self.clue(event_id=stray["id"]))
        self.add(
            "router/lifecycle-refusal-takes-the-id",
            "§7 duplicate",
            "a signed event refused by the lifecycle replayed under another subject",
            self.route(stray, refused(Reason.BAD_TRANSITION)),
            self.route(reused, refused(Reason.DUPLICATE)),
        )

    def payloads(self) -> None:
        """§2 payload rules: strict types, no null, closed objects."""
        rule = "§2 payload"
        bulletin = example("bulletin.posted")

        def bad(name: str, attack: str, payload: dict[str, Any], family: str = "bulletin.posted") -> None:
            body = self.forge.unsigned(
                "sc-luzhou", family, self.subject(family.split(".")[0]), ["cq-dazu"], payload
            )
            self.add(
                name, rule, attack, self.route(sign_exactly(body, "sc-luzhou#sig-1"), refused(Reason.SCHEMA))
            )

        bad(
            "payload/null-field",
            "two wire forms of one payload (null or omitted)",
            bulletin | {"reply_by": None},
        )
        bad(
            "payload/unknown-field",
            "a field some readers act on and others ignore",
            bulletin | {"urgent": True},
        )
        bad(
            "payload/missing-field",
            "a bulletin without a body",
            {k: v for k, v in bulletin.items() if k != "body"},
        )
        bad(
            "payload/date-format",
            "a date two readers parse differently",
            bulletin | {"reply_by": "2026/12/05"},
        )
        responded = example("jointcheck.responded")
        bad(
            "payload/integer-as-boolean",
            "1 read as true by a lax reader, refused by a strict one",
            responded | {"accepted": 1},
            "jointcheck.responded",
        )
        progress = example("rectification.progress_reported")
        bad(
            "payload/string-as-integer",
            '"50" read as 50 by a lax reader',
            progress | {"percent_complete": "50"},
            "rectification.progress_reported",
        )
        body = self.forge.unsigned(
            "sc-zigong", "clue.transferred", self.subject("clue"), ["cq-yongchuan"], {}
        )
        body |= {"datacontenttype": "application/json", "data": example("clue.transferred")}
        self.add(
            "seal/clue-in-clear",
            "§4 sealed types",
            "a clue naming officials sent readable to the router and the log",
            self.route(self.sign(body), refused(Reason.NOT_SEALED)),
        )

    def seals(self) -> None:
        """§4 sealed structure and opening."""
        rule = "§4 sealed payloads"
        bulletin = self.forge.unsigned(
            "sc-luzhou", "bulletin.posted", self.subject("bulletin"), ["cq-dazu"], {}
        )
        bulletin |= {
            "datacontenttype": "application/jointbus-sealed+json",
            "data": self.forge.seal_with(
                example("bulletin.posted"), bulletin["id"], [("cq-dazu", "cq-dazu#seal-1")]
            ),
        }
        self.add(
            "seal/plain-type-sealed",
            rule,
            "a payload the lifecycle must read hidden from the router",
            self.route(self.sign(bulletin), refused(Reason.SCHEMA)),
        )
        post = self.sign(
            self.forge.unsigned("sc-luzhou", "bulletin.posted", self.subject("bulletin"), ["cq-dazu"],
                                example("bulletin.posted"))
        )  # fmt: skip
        self.add(
            "receive/not-addressed",
            "§3.1 #26",
            "an agency acting on a plain event misdelivered to it",
            self.receive(post, "sc-zigong", refused(Reason.NOT_A_RECIPIENT)),
        )

        def sealed_to(body: dict[str, Any], wraps: list[tuple[str, str]]) -> dict[str, Any]:
            return dict(body, data=self.forge.seal_with(example("clue.transferred"), body["id"], wraps))

        body = self.clue()
        self.add(
            "seal/other-recipient-set",
            rule,
            "a clue readable by an agency it was not sent to",
            self.route(
                self.sign(sealed_to(body, [("sc-luzhou", "sc-luzhou#seal-1")])), refused(Reason.SCHEMA)
            ),
        )
        body = self.forge.unsigned(
            "cq-yongchuan",
            "clue.disposition_reported",
            self.subject("clue"),
            ["sc-zigong", "sc-luzhou"],
            example("clue.disposition_reported"),
        )
        order = sealed_to(body, [("sc-luzhou", "sc-luzhou#seal-1"), ("sc-zigong", "sc-zigong#seal-1")])
        self.add(
            "seal/recipient-order",
            rule,
            "two readings of which wrap belongs to which recipient",
            self.route(self.sign(order), refused(Reason.SCHEMA)),
        )
        body = self.clue()
        self.add(
            "seal/another-agencys-key",
            "§4 sealing key",
            "a clue for cq-yongchuan readable with sc-luzhou's key",
            self.route(
                self.sign(sealed_to(body, [("cq-yongchuan", "sc-luzhou#seal-1")])),
                refused(Reason.UNKNOWN_KEY),
            ),
        )
        clue = self.sign(self.clue())
        wrap = dict(
            clue["data"]["recipients"][0], enc=with_trailing_bit(clue["data"]["recipients"][0]["enc"])
        )
        body = {k: v for k, v in clue.items() if k not in ("sigkeyid", "signature")}
        body["data"] = dict(clue["data"], recipients=[wrap])
        self.add(
            "seal/trailing-bits",
            "§3 canonical base64url",
            "a second text for the same wrapped key",
            self.route(self.sign(body), refused(Reason.SCHEMA)),
        )
        clue = self.sign(self.clue())
        self.add(
            "seal/opens",
            rule,
            "a sealed clue its recipient cannot open",
            self.route(clue),
            self.receive(clue, "cq-yongchuan", Verdict("accepted", payload=example("clue.transferred"))),
        )
        clue = self.sign(self.clue())
        self.add(
            "seal/non-recipient-read",
            rule,
            "an agency reading a clue sealed to another",
            self.receive(clue, "sc-luzhou", refused(Reason.NOT_A_RECIPIENT)),
        )
        source = self.sign(self.clue())
        target = self.clue()
        target["data"] = source["data"]
        transplanted = self.sign(target)
        self.add(
            "seal/ciphertext-transplanted",
            rule,
            "a sealed payload cut from one event and pasted into another",
            self.route(transplanted),
            self.receive(transplanted, "cq-yongchuan", refused(Reason.SEAL_BROKEN)),
        )
        clue = self.sign(self.clue())
        forged = dict(clue, recipients=["cq-yongchuan"], time=format_time(T + MS))
        self.add(
            "receive/forged-signature",
            "§3 signature",
            "a recipient trusting the router instead of the signature",
            self.receive(forged, "cq-yongchuan", refused(Reason.BAD_SIGNATURE)),
        )
        v1 = example_version("clue.transferred", 1)
        old = self.sign(
            self.forge.unsigned(
                "sc-zigong", "clue.transferred", self.subject("clue"), ["cq-yongchuan"], v1, version=1
            )
        )
        self.add(
            "version/clue-v1-still-read",
            "§6 versions",
            "history written under v1 refused after v2 came",
            self.route(old),
            self.receive(old, "cq-yongchuan", Verdict("accepted", payload=v1)),
        )

    def sealed_plaintexts(self) -> None:
        """§4 the opened plaintext: held to a plain payload's rules (last in the document,
        so adding it renumbered no earlier event)."""
        for name, plaintext, attack in (
            ("seal/plaintext-not-json", b"not json", "a sealed clue that stops its recipient's inbox"),
            (
                "seal/plaintext-null-field",
                _plaintext(example("clue.transferred"), title=None),
                "an opened payload read less strictly than a plain one",
            ),
            (
                "seal/plaintext-duplicate-key",
                _plaintext(example("clue.transferred"))[:-1] + ',"title":"第二种读法"}'.encode(),
                "two recipients reading two different clues from one seal",
            ),
        ):
            body = self.clue()
            hostile = self.sign(
                dict(
                    body,
                    data=self.forge.seal_with(
                        plaintext, body["id"], [("cq-yongchuan", "cq-yongchuan#seal-1")]
                    ),
                )
            )
            self.add(
                name,
                "§4 sealed payloads",
                attack,
                self.route(hostile),
                self.receive(hostile, "cq-yongchuan", refused(Reason.SCHEMA)),
            )

    def byte_bounds(self) -> None:
        """§2 the bounds on the bytes: brackets and commas counted wherever they stand
        (last in the document, so adding it renumbered no earlier event)."""
        rule = "§2 bounds"
        payload = example("jointcheck.invited")
        base = structure_size(to_wire(self.sign(self.invitation(payload))))
        for extra, expect, name, attack in (
            (0, OK, "bounds/structure-at-limit", "an honest event refused for commas in its text"),
            (
                1,
                refused(Reason.TOO_LARGE),
                "bounds/structure-over-limit",
                "a reader's time exhausted by structure",
            ),
        ):
            commas = "," * (MAX_STRUCTURE - base + extra)
            scope = payload["scope"] + commas
            event = self.sign(self.invitation(payload | {"scope": scope}))
            self.add(name, rule, attack, self.route(event, expect))
        deep = self.sign(self.invitation(payload | {"scope": "[" * 40 + payload["scope"]}))
        self.add(
            "bounds/brackets-in-a-string-do-not-nest",
            rule,
            "an honest text refused for its brackets (they count as structure, not nesting)",
            self.route(deep, OK),
        )
        nested: list[Any] = []
        for _ in range(MAX_DEPTH - 2):  # 17 levels of JSON with the envelope and data
            nested = [nested]
        body = self.invitation(payload | {"scope": "]" * 40 + payload["scope"]})
        body["data"] = body["data"] | {"x": nested}  # the closing brackets come first
        self.add(
            "bounds/closing-brackets-in-a-string-hide-no-nesting",
            rule,
            "nesting smuggled past a depth count that reads brackets inside strings",
            self.route(sign_exactly(body, "sc-yibin#sig-1"), refused(Reason.TOO_DEEP)),
        )
        broken = to_wire(self.sign(self.invitation()))[:-1] + b',"x":' + b"[" * MAX_DEPTH + b"x"
        self.add(
            "bounds/depth-before-the-first-syntax-error",
            rule,
            "two verifiers disagreeing on a text both deep and broken (deep first: too_deep)",
            self.route(broken, refused(Reason.TOO_DEEP), outbox="sc-yibin"),
        )

    def impossible_times(self) -> None:
        """§2 times name real moments (last in the document: no earlier event renumbered)."""
        for name, day in (("time/no-such-day", "2026-02-30"), ("time/no-such-month", "2026-13-01")):
            body = self.invitation()
            body["time"] = day + body["time"][10:]
            self.add(
                name,
                "§2 envelope",
                "a time that matches the pattern but names no moment (a verifier's date parser fails)",
                self.route(sign_exactly(body, "sc-yibin#sig-1"), refused(Reason.SCHEMA)),
            )


def _plaintext(payload: dict[str, Any], **changes: Any) -> bytes:
    """A payload's sealed plaintext with ``changes`` (a hostile sender's own bytes)."""
    return json.dumps(payload | changes, ensure_ascii=False, separators=(",", ":")).encode()
