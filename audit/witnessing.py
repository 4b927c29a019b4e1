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


def cosigning_agencies(checkpoint: Checkpoint, lines: Iterable[str], registry: Registry) -> tuple[str, ...]:
    """The agencies with a valid cosignature of ``checkpoint`` among ``lines`` (each once;
    lines of unknown signers, or that do not verify, count for nothing)."""
    keys = registry.witness_keys()
    found: set[str] = set()
    for line in set(lines):
        for agency, records in keys.items():
            if agency in found:
                continue
            for record in records:
                public = Ed25519PublicKey.from_public_bytes(record.raw())
                try:
                    if verify_cosignature(line, checkpoint, witness_name(agency), public) is not None:
                        found.add(agency)
                        break
                except AuditError:
                    continue  # a forged line claiming this witness
    return tuple(sorted(found))


def witnessed(checkpoint: Checkpoint, lines: Iterable[str], registry: Registry) -> Witnessed:
    """What ``lines`` prove about ``checkpoint`` under ``registry``'s policy."""
    witnesses = len(registry.witness_keys())
    required = registry.policy.witness_quorum
    if required is not None:  # never fewer than a majority: two views could each reach less
        required = max(required, witnesses // 2 + 1)
    return Witnessed(checkpoint, cosigning_agencies(checkpoint, lines, registry), witnesses, required)


def cosignature_lines(checkpoint: Checkpoint, cosigned_notes: Iterable[str]) -> list[str]:
    """The witness signature lines of every cosigned note whose body is ``checkpoint``'s
    (each once; whether they verify is ``witnessed``'s and ``witness_lines``' business)."""
    body = checkpoint.text()
    lines: dict[str, None] = {}
    for note in cosigned_notes:
        if note.partition("\n\n")[0] + "\n" == body:
            lines.update(
                (line, None) for line in signature_lines(note) if line.startswith(f"— {WITNESS_PREFIX}")
            )
    return list(lines)


def witness_lines(checkpoint: Checkpoint, cosigned_notes: Iterable[str], registry: Registry) -> list[str]:
    """Only the lines that verify as cosignatures of ``checkpoint`` by a registered witness
    key: what a proof carries (a forged line would make an honest proof fail)."""
    keys = registry.witness_keys()
    verified = []
    for line in cosignature_lines(checkpoint, cosigned_notes):
        agency = line[2:].split(" ", 1)[0].removeprefix(WITNESS_PREFIX)
        for record in keys.get(agency, ()):
            try:
                public = Ed25519PublicKey.from_public_bytes(record.raw())
                if verify_cosignature(line, checkpoint, witness_name(agency), public) is not None:
                    verified.append(line)
                    break
            except AuditError:
                continue
    return verified
