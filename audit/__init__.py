"""The append-only audit log: Merkle tree, checkpoints, proofs, replay, export."""
