"""Whether a checkpoint is witnessed: how many agencies' witnesses cosigned it, against the
registry's policy (``policy.witness_quorum``: absent, cosignatures are reported, not
required). Auditors, ``audit prove`` and ``check-proof`` use it; a proof carries its
checkpoint's cosignatures, so an offline verifier needs only the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jointbus.audit.cosign import WITNESS_PREFIX, signature_lines, verify_cosignature, witness_name
from jointbus.audit.errors import AuditError
from jointbus.audit.notes import Checkpoint
from jointbus.schemas.registry import Registry


@dataclass(frozen=True)
class Witnessed:
    """The agencies whose witnesses cosigned a checkpoint, and what the policy asks."""

    checkpoint: Checkpoint
    agencies: tuple[str, ...]
    witnesses: int  # agencies with a witness key
    required: int | None
    lines: tuple[str, ...] = ()  # the verified cosignature lines: what a proof carries

    @property
    def enough(self) -> bool:
        return self.required is None or len(self.agencies) >= self.required

    def describe(self) -> str:
        policy = f"policy: {self.required} required" if self.required is not None else "none required"
        names = f": {', '.join(self.agencies)}" if self.agencies else ""
        return (
            f"checkpoint {self.checkpoint.size} cosigned by {len(self.agencies)} of {self.witnesses} "
            f"agencies' witnesses ({policy}){names}"
        )

    def refusal(self) -> AuditError:
        """The ``not_witnessed`` error of a checkpoint without enough cosignatures."""
        return AuditError(
            f"{self.describe()}: {self.required} needed — wait for the witnesses "
            "(`jointbus witness status`) or see why they refuse (their alerts in every inbox)",
            reason="not_witnessed",
        )


def verified_lines(checkpoint: Checkpoint, lines: Iterable[str], registry: Registry) -> dict[str, str]:
    """Agency → a line among ``lines`` that verifies as its witness's cosignature of
    ``checkpoint`` (each agency once; lines of unknown signers, forged lines, count for
    nothing)."""
    keys = registry.witness_keys()
    found: dict[str, str] = {}
    for line in lines:
        agency = line[2:].split(" ", 1)[0].removeprefix(WITNESS_PREFIX)
        if agency in found or not line.startswith(f"— {WITNESS_PREFIX}"):
            continue
        for record in keys.get(agency, ()):
            public = Ed25519PublicKey.from_public_bytes(record.raw())
            try:
                if verify_cosignature(line, checkpoint, witness_name(agency), public) is not None:
                    found[agency] = line
                    break
            except AuditError:
                continue  # a forged line claiming this witness
    return found


def witnessed(checkpoint: Checkpoint, lines: Iterable[str], registry: Registry) -> Witnessed:
    """What ``lines`` prove about ``checkpoint`` under ``registry``'s policy."""
    witnesses = len(registry.witness_keys())
    required = registry.policy.witness_quorum
    if required is not None:  # never fewer than a majority: two views could each reach less
        required = max(required, witnesses // 2 + 1)
    verified = verified_lines(checkpoint, lines, registry)
    return Witnessed(checkpoint, tuple(sorted(verified)), witnesses, required, tuple(verified.values()))


def cosignature_lines(checkpoint: Checkpoint, cosigned_notes: Iterable[str]) -> list[str]:
    """The witness signature lines of every cosigned note whose body is ``checkpoint``'s
    (each once; whether they verify is ``witnessed``'s business)."""
    body = checkpoint.text()
    lines: dict[str, None] = {}
    for note in cosigned_notes:
        if note.partition("\n\n")[0] + "\n" == body:
            lines.update(
                (line, None) for line in signature_lines(note) if line.startswith(f"— {WITNESS_PREFIX}")
            )
    return list(lines)
