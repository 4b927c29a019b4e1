"""Verification of a received envelope, one named check per attack.

In the manner of python-tuf, each ``check_*`` function only answers (a rejection or
None); ``verify_event`` runs them in order and raises the first rejection. The router uses
it live, the Subscriber uses it again end to end, and auditors use it on replay with the
router's recorded receive time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jointbus.schemas.catalog import EventSpec, Payload, parse_payload, spec_of
from jointbus.schemas.envelope import Envelope, ParsedEnvelope, parse_envelope
from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.ids import is_uuid7, parse_time, uuid7_time
from jointbus.schemas.registry import Member, Registry
from jointbus.schemas.sealing import sealed_data
from jointbus.schemas.signing import signature_valid

#: how far in the future an event's ``time`` may lie when it arrives
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: how far in the past an event's ``time`` may lie when it arrives (an agency system that
#: was cut off re-signs what it could not send, rather than sending day-old events)
MAX_EVENT_AGE = timedelta(hours=1)
#: how far a UUIDv7 id's embedded time may differ from the event's ``time``
ID_TIME_TOLERANCE = timedelta(seconds=5)
#: how long an event id is remembered: no event outside this window of arrival passes
#: ``check_clock``, so remembering ids this long makes them unique on the whole bus
ID_WINDOW = MAX_EVENT_AGE + MAX_CLOCK_SKEW + ID_TIME_TOLERANCE


@dataclass(slots=True)
class VerifiedEvent:
    """An envelope that passed every check, with what the checks learned."""

    raw: dict[str, Any]
    envelope: Envelope
    spec: EventSpec
    sender: Member
    payload: Payload | None  # None when sealed: only recipients can open it

    @property
    def id(self) -> str:
        return self.envelope.id


def check_signature(parsed: ParsedEnvelope, registry: Registry) -> ContractError | None:
    """Forged or altered events: the signature must verify under the sender's own key."""
    env = parsed.envelope
    try:
        key = registry.key(env.sigkeyid)
    except ContractError as exc:
        return exc
    if key.owner != env.sender or key.purpose != "sign":
        return rejection(Reason.UNKNOWN_KEY, f"key {env.sigkeyid} is not a signing key of {env.sender}")
    if not signature_valid(parsed.raw, registry.verifier(env.sigkeyid), plain=parsed.plain):
        return rejection(Reason.BAD_SIGNATURE, f"signature of event {env.id} does not verify")
    return None


def check_key_state(env: Envelope, registry: Registry, received_at: datetime) -> ContractError | None:
    """Stolen or retired keys: revoked before arrival, or used outside its validity window."""
    key = registry.key(env.sigkeyid)
    if key.revoked_by(received_at):
        return rejection(Reason.KEY_REVOKED, f"key {key.kid} was revoked at {key.revoked_at}")
    if not key.valid_at(parse_time(env.time)):
        return rejection(Reason.KEY_EXPIRED, f"key {key.kid} was not valid at event time {env.time}")
    return None


def check_clock(env: Envelope, received_at: datetime) -> ContractError | None:
    """Pre- and back-dated events: ``time`` lies within [arrival - MAX_EVENT_AGE,
    arrival + MAX_CLOCK_SKEW], so every decision is taken about the present."""
    moment = parse_time(env.time)
    if moment - received_at > MAX_CLOCK_SKEW:
        return rejection(Reason.CLOCK_SKEW, f"event time {env.time} is ahead of the receiver's clock")
    if received_at - moment > MAX_EVENT_AGE:
        return rejection(
            Reason.CLOCK_SKEW,
            f"event time {env.time} is more than {MAX_EVENT_AGE} before its arrival",
        )
    return None


def check_id(env: Envelope) -> ContractError | None:
    """Ids forged to dodge duplicate detection: a UUIDv7 whose time agrees with ``time``."""
    if not is_uuid7(env.id):
        return rejection(Reason.SCHEMA, f"event id {env.id} is not a UUIDv7")
    if abs(uuid7_time(env.id) - parse_time(env.time)) > ID_TIME_TOLERANCE:
        return rejection(Reason.SCHEMA, f"the time in event id {env.id} disagrees with time {env.time}")
    return None


def check_rights(env: Envelope, spec: EventSpec, sender: Member, registry: Registry) -> ContractError | None:
    """Impersonated roles and misrouting: the sender may publish this type to these agencies."""
    if not sender.may_publish(spec.family):
        return rejection(Reason.NOT_AUTHORIZED, f"{sender.id} may not publish {spec.family}")
    recipients = env.recipients
    if len(set(recipients)) != len(recipients):
        return rejection(Reason.DUPLICATE_RECIPIENT, "a recipient is named twice")
    unknown = set(recipients).difference(registry.agency_ids)
    if unknown:
        return rejection(Reason.UNKNOWN_RECIPIENT, f"{min(unknown)} is not a member agency")
    if sender.id in recipients:
        return rejection(Reason.NOT_AUTHORIZED, f"{sender.id} may not address itself")
    return None


def check_data(
    env: Envelope, spec: EventSpec, registry: Registry, received_at: datetime
) -> tuple[Payload | None, ContractError | None]:
    """Leaks and malformed content: sensitive types sealed to exactly the recipients, in
    their order, each with a sealing key of its own that is usable now."""
    try:
        if spec.sensitive and not env.sealed:
            return None, rejection(Reason.NOT_SEALED, f"{spec.type} must be sealed")
        if env.sealed and not spec.sensitive:
            return None, rejection(
                Reason.SCHEMA, f"{spec.type} is not a sealed type: its payload travels plain"
            )
        if env.sealed:
            sealed = sealed_data(env.data)
            if [w.agency for w in sealed.recipients] != env.recipients:
                return None, rejection(Reason.SCHEMA, "sealed to a different list than recipients")
            moment = parse_time(env.time)
            for wrap in sealed.recipients:
                error = check_sealing_key(wrap.agency, wrap.kid, registry, moment, received_at)
                if error is not None:
                    return None, error
            return None, None
        return parse_payload(env.type, env.data), None
    except ContractError as exc:
        return None, exc


def check_sealing_key(
    agency: str, kid: str, registry: Registry, moment: datetime, received_at: datetime
) -> ContractError | None:
    """Content sealed to the wrong reader: ``kid`` is a sealing key of ``agency`` itself,
    not revoked before arrival and valid at the event's time (as signing keys are)."""
    key = next((k for k in registry.keys if k.kid == kid), None)
    if key is None or key.owner != agency or key.purpose != "seal":
        return rejection(Reason.UNKNOWN_KEY, f"{kid} is not a sealing key of {agency}")
    if key.revoked_by(received_at):
        return rejection(Reason.KEY_REVOKED, f"sealing key {kid} was revoked at {key.revoked_at}")
    if not key.valid_at(moment):
        return rejection(Reason.KEY_EXPIRED, f"sealing key {kid} was not valid at event time")
    return None


def verify_event(
    wire: bytes, registry: Registry, *, received_at: datetime, check_skew: bool = True
) -> VerifiedEvent:
    """Run every check on wire bytes; the verified event or the first rejection, raised.

    ``received_at`` is when the bus received the event (now, live; the router's recorded
    time, on replay). ``check_skew`` is off on replay, where arrival is long past.
    """
    return verify_parsed(parse_envelope(wire), registry, received_at=received_at, check_skew=check_skew)


def verify_parsed(
    parsed: ParsedEnvelope, registry: Registry, *, received_at: datetime, check_skew: bool = True
) -> VerifiedEvent:
    """``verify_event`` for an envelope already parsed and size-checked (auditors' replay)."""
    raw, env = parsed.raw, parsed.envelope
    spec = spec_of(env.type)
    sender = registry.member(env.sender)
    error = check_signature(parsed, registry) or check_key_state(env, registry, received_at)
    error = error or check_id(env)
    if error is None and check_skew:
        error = check_clock(env, received_at)
    error = error or check_rights(env, spec, sender, registry)
    if error is not None:
        raise error
    payload, error = check_data(env, spec, registry, received_at)
    if error is not None:
        raise error
    return VerifiedEvent(raw=raw, envelope=env, spec=spec, sender=sender, payload=payload)
