"""RFC 6962 / RFC 9162 Merkle tree known answers and proof verification.

Test vectors: the Certificate Transparency reference data as published in
google/trillian, merkle/log_verifier_test.go (leaves, roots of sizes 1..8, inclusion
proofs PATH(0,8), PATH(5,8), PATH(2,3), PATH(1,5), consistency proofs PROOF(1,8),
PROOF(6,8), PROOF(2,5)).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jointbus.audit.index import TreeIndex
from jointbus.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_subtree,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (0, 1): [],
}
CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (1, 1): [],
}
HASHES = [leaf_hash(x) for x in LEAVES]
TREE = list_subtree(HASHES)


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_reference(size: int) -> None:
    """MTH(D[n]) for n = 0..8, and the streaming frontier agrees."""
    assert TREE(0, size).hex() == ROOTS[size]
    frontier = Frontier()
    for h in HASHES[:size]:
        frontier.append(h)
    assert frontier.root().hex() == ROOTS[size]
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_proofs_match_the_ct_reference(index: int, size: int) -> None:
    """PATH(m, D[n]) byte for byte, and it verifies; a wrong index, size or leaf does not."""
    proof = inclusion_proof(index, size, TREE)
    assert [p.hex() for p in proof] == INCLUSION[(index, size)]
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(index, size, HASHES[index], proof, root)
    assert not verify_inclusion(index, size, leaf_hash(b"WrongLeaf"), proof, root)
    assert not verify_inclusion(index, size * 2, HASHES[index], proof, root)
    if size > 1:
        assert not verify_inclusion(index ^ 1, size, HASHES[index], proof, root)
        assert not verify_inclusion(index, size, HASHES[index], proof[:-1], root)
        assert not verify_inclusion(index, size, HASHES[index], [*proof, root], root)


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_consistency_proofs_match_the_ct_reference(old: int, new: int) -> None:
    """PROOF(m, D[n]) byte for byte, and it verifies; swapped or wrong roots do not."""
    proof = consistency_proof(old, new, TREE)
    assert [p.hex() for p in proof] == CONSISTENCY[(old, new)]
    r1, r2 = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, r1, r2, proof)
    if old != new:
        assert not verify_consistency(old, new, r2, r1, proof)
        assert not verify_consistency(old, new, r1, EMPTY_ROOT, proof)
        assert not verify_consistency(old, new, r1, r2, proof[:-1])


def test_all_proofs_verify_for_every_small_tree() -> None:
    """Every inclusion and consistency proof of trees up to 40 leaves verifies."""
    for n in range(1, 41):
        hashes = [leaf_hash(n.to_bytes(2, "big") + i.to_bytes(2, "big")) for i in range(n)]
        tree = list_subtree(hashes)
        root = tree(0, n)
        for i in range(n):
            assert verify_inclusion(i, n, hashes[i], inclusion_proof(i, n, tree), root)
        for m in range(1, n + 1):
            assert verify_consistency(m, n, tree(0, m), root, consistency_proof(m, n, tree))


def test_sqlite_index_gives_the_same_tree_and_survives_reopening(tmp_path: Path) -> None:
    """The on-disk index computes the same roots and proofs, also after being reopened."""
    rng = random.Random(7)
    values = [rng.randbytes(rng.randint(1, 300)) for _ in range(1000)]
    index = TreeIndex(tmp_path / "index.sqlite")
    index.append((i, f"t:0:{i}".encode(), v, None) for i, v in enumerate(values[:600]))
    index.close()
    index = TreeIndex(tmp_path / "index.sqlite")
    index.append((600 + i, f"t:0:{600 + i}".encode(), v, None) for i, v in enumerate(values[600:]))
    tree = list_subtree([leaf_hash(v) for v in values])
    assert index.size == 1000
    for size in (1, 2, 3, 511, 512, 513, 999, 1000):
        assert index.root(size) == tree(0, size)
    assert index.inclusion(777, 1000) == inclusion_proof(777, 1000, tree)
    assert index.consistency(300, 1000) == consistency_proof(300, 1000, tree)


def test_repeated_positions_do_not_become_leaves(tmp_path: Path) -> None:
    """A decision logged again after a crash (same position) is not a second leaf."""
    index = TreeIndex(tmp_path / "index.sqlite")
    added = index.append(
        [
            (0, b"jointbus.outbox.a:0:0", b"r0", None),
            (1, b"jointbus.outbox.a:0:1", b"r1", None),
            (2, b"jointbus.outbox.a:0:1", b"r1", None),
            (3, b"jointbus.outbox.a:0:0", b"r0", None),
            (4, b"deadline:clue/1:x:2026-01-01", b"d", None),
            (5, b"deadline:clue/1:x:2026-01-01", b"d", None),
            (6, b"jointbus.outbox.a:0:2", b"r2", None),
        ]
    )
    assert added == 4
    assert index.root() == list_subtree([leaf_hash(v) for v in (b"r0", b"r1", b"d", b"r2")])(0, 4)
