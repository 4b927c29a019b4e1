"""The jointbus wire contract and domain rules: pure code, no I/O.

Envelope, event catalog, canonical bytes, signatures, sealing, the agency registry
and the lifecycle rules shared by the live router and by auditors' replay.

The public API (what an agency system or a second implementation's test harness uses) is
``__all__``; everything else is internal and may change between versions.
"""

from jointbus.schemas.lazy import lazy_exports

#: where each public name lives, imported on first use: a command that needs none of them
#: starts faster
_HOME = {
    "CATALOG": "jointbus.schemas.catalog",
    "CURRENT": "jointbus.schemas.catalog",
    "ContractError": "jointbus.schemas.errors",
    "Envelope": "jointbus.schemas.envelope",
    "EventSpec": "jointbus.schemas.catalog",
    "JointbusError": "jointbus.schemas.errors",
    "Keyring": "jointbus.schemas.keys",
    "Member": "jointbus.schemas.registry",
    "Payload": "jointbus.schemas.catalog",
    "Reason": "jointbus.schemas.errors",
    "Registry": "jointbus.schemas.registry",
    "VerifiedEvent": "jointbus.schemas.verify",
    "compose": "jointbus.schemas.compose",
    "open_sealed": "jointbus.schemas.sealing",
    "parse_envelope": "jointbus.schemas.envelope",
    "parse_payload": "jointbus.schemas.catalog",
    "seal": "jointbus.schemas.sealing",
    "spec_of": "jointbus.schemas.catalog",
    "to_wire": "jointbus.schemas.envelope",
    "type_of": "jointbus.schemas.catalog",
    "verify_event": "jointbus.schemas.verify",
}

__all__ = [
    "CATALOG",
    "CURRENT",
    "ContractError",
    "Envelope",
    "EventSpec",
    "JointbusError",
    "Keyring",
    "Member",
    "Payload",
    "Reason",
    "Registry",
    "VerifiedEvent",
    "compose",
    "open_sealed",
    "parse_envelope",
    "parse_payload",
    "seal",
    "spec_of",
    "to_wire",
    "type_of",
    "verify_event",
]


__getattr__ = lazy_exports(__name__, _HOME)
