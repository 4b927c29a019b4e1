"""The append-only audit log: Merkle tree, checkpoints, proofs, replay, export.

The public API for auditors (``__all__``): ``Verifier`` re-checks a log record by record,
``check_checkpoints`` the signed checkpoints, ``parse_proof``/``verify_inclusion`` one
event's proof offline; failures are ``AuditFailure`` codes.
"""

from jointbus.schemas.lazy import lazy_exports

#: where each public name lives, imported on first use: a command that needs none of them
#: starts faster
_HOME = {
    "AuditError": "jointbus.audit.errors",
    "AuditFailure": "jointbus.audit.errors",
    "Checkpoint": "jointbus.audit.notes",
    "InconsistentLogError": "jointbus.audit.errors",
    "Proof": "jointbus.audit.notes",
    "Report": "jointbus.audit.verifier",
    "VerificationError": "jointbus.audit.errors",
    "Verifier": "jointbus.audit.verifier",
    "check_checkpoints": "jointbus.audit.verifier",
    "open_checkpoint": "jointbus.audit.notes",
    "parse_proof": "jointbus.audit.notes",
    "verify_consistency": "jointbus.audit.merkle",
    "verify_inclusion": "jointbus.audit.merkle",
}

__all__ = [
    "AuditError",
    "AuditFailure",
    "Checkpoint",
    "InconsistentLogError",
    "Proof",
    "Report",
    "VerificationError",
    "Verifier",
    "check_checkpoints",
    "open_checkpoint",
    "parse_proof",
    "verify_consistency",
    "verify_inclusion",
]


__getattr__ = lazy_exports(__name__, _HOME)
