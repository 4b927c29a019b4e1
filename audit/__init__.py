"""The append-only audit log: Merkle tree, checkpoints, proofs, replay, export.

The public API for auditors (``__all__``): ``Verifier`` re-checks a log record by record,
``check_checkpoints`` the signed checkpoints, ``parse_proof``/``verify_inclusion`` one
event's proof offline; failures are ``AuditFailure`` codes.
"""

from jointbus.audit.errors import AuditError, AuditFailure, InconsistentLogError, VerificationError
from jointbus.audit.merkle import verify_consistency, verify_inclusion
from jointbus.audit.notes import Checkpoint, Proof, open_checkpoint, parse_proof
from jointbus.audit.verifier import Report, Verifier, check_checkpoints

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
