"""The jointbus wire contract and domain rules: pure code, no I/O.

Envelope, event catalog, canonical bytes, signatures, sealing, the agency registry
and the lifecycle rules shared by the live router and by auditors' replay.

The public API (what an agency system or a second implementation's test harness uses) is
``__all__``; everything else is internal and may change between versions.
"""

from jointbus.schemas.catalog import CATALOG, CURRENT, EventSpec, Payload, parse_payload, spec_of, type_of
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import Envelope, parse_envelope, to_wire
from jointbus.schemas.errors import ContractError, JointbusError, Reason
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Member, Registry
from jointbus.schemas.sealing import open_sealed, seal
from jointbus.schemas.verify import VerifiedEvent, verify_event

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
