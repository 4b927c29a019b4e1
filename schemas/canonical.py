"""RFC 8785 (JSON Canonicalization Scheme) bytes, with a fast path.

The reference is the ``rfc8785`` package. For the JSON that envelopes actually carry —
strings, booleans, null, integers within ±2^53, no astral-plane characters — RFC 8785
output is byte-identical to Python's ``json.dumps`` with sorted keys, no ASCII escaping
and compact separators: both escape exactly ``"``, ``\\`` and control characters (with
the same short forms and lowercase ``\\u00xx``), and for BMP-only keys code-point order
equals the UTF-16 order RFC 8785 sorts by. Anything else takes the reference path. A
property test keeps the two paths equal.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from jointbus.schemas.errors import Reason, rejection

MAX_SAFE_INT = 2**53
_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


def astral_bytes(text: bytes) -> bool:
    """True when UTF-8 ``text`` holds an astral character as such (escaped ones, which begin
    ``\\ud8``–``\\udb``, are the JSON parser's to find); byte searches only."""
    return not text.isascii() and any(lead in text for lead in _ASTRAL_LEADS)


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _plain(obj: Any) -> bool:
    """True when ``obj`` holds only values whose RFC 8785 form json.dumps reproduces."""
    stack = [obj]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not -MAX_SAFE_INT < item < MAX_SAFE_INT:
                return False
        elif not (kind is str or kind is bool or item is None):
            return False
    return True


def canonical(obj: Any, *, plain: bool = False) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value; ``schema`` error if it has none.

    ``plain=True`` asserts what ``_plain`` would check and that no key is astral (the strict
    parser knows this of what it parsed), saving the walk.
    """
    try:
        if plain:
            return _ENCODER.encode(obj).encode("utf-8")
        if _plain(obj):
            text = _ENCODER.encode(obj)
            if text.isascii():
                return text.encode("ascii")
            data = text.encode("utf-8")  # a lone surrogate raises: no canonical form
            if not astral_bytes(data):
                return data
        return rfc8785.dumps(obj)
    except (UnicodeEncodeError, rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise rejection(Reason.SCHEMA, f"no canonical JSON form: {str(exc)[:200]}") from None
