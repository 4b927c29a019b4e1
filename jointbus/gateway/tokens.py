"""Bearer tokens of the agency's internal systems, stored only as SHA-256 hashes.

A token is shown once, when it is created (``jointbus gateway token add NAME``); the
gateway keeps its hash, the system's name and what it may do (scopes). A leaked tokens file
gives no token away. Each call is logged with the system's name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from jointbus.gateway.errors import GatewayError
from jointbus.schemas.ids import format_time, utcnow
from jointbus.streams.keystore import private_dir, write_private

#: publish: POST events, envelopes, proposals; inbox: read and acknowledge the inbox;
#: read: the status of sent events and the aggregates
SCOPES = ("publish", "inbox", "read")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PREFIX = "jbgw_"


@dataclass(frozen=True)
class Caller:
    """An authenticated internal system."""

    name: str
    scopes: frozenset[str]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """The tokens file of one agency's gateway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[tuple[int, int, int], dict[str, dict[str, object]]] | None = None

    def _load(self) -> dict[str, dict[str, object]]:
        """The file's systems; read again whenever the file changed (a stat per call)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)  # a rewrite is a new inode (atomic replace)
        if self._cached is None or self._cached[0] != stamp:
            systems: dict[str, dict[str, object]] = json.loads(self.path.read_text())["systems"]
            self._cached = (stamp, systems)
        return self._cached[1]

    def _save(self, systems: dict[str, dict[str, object]]) -> None:
        private_dir(self.path.parent)
        write_private(self.path, json.dumps({"systems": systems}, indent=2, sort_keys=True) + "\n")

    def add(self, name: str, scopes: tuple[str, ...] = SCOPES) -> str:
        """A new token for ``name`` (returned once, stored hashed); replaces its old one."""
        if not NAME.match(name):
            raise GatewayError(
                f"{name!r} is not a system name (lower-case letters, digits, . _ -; at most 63)",
                reason="bad_name",
                status=400,
            )
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise GatewayError(
                f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}",
                reason="bad_scope",
                status=400,
            )
        token = PREFIX + secrets.token_urlsafe(32)
        systems = dict(self._load())
        systems[name] = {"sha256": _digest(token), "scopes": sorted(scopes), "created": format_time(utcnow())}
        self._save(systems)
        return token

    def remove(self, name: str) -> bool:
        """Revoke ``name``'s token (True if there was one)."""
        systems = dict(self._load())
        if systems.pop(name, None) is None:
            return False
        self._save(systems)
        return True

    def listing(self) -> list[tuple[str, list[str], str]]:
        """(name, scopes, created) of every system."""
        return [
            (name, list(entry["scopes"]), str(entry["created"]))  # type: ignore[call-overload]
            for name, entry in sorted(self._load().items())
        ]

    def authenticate(self, token: str) -> Caller | None:
        """The system holding ``token``, or None (compared by hash, in constant time)."""
        digest = _digest(token)
        found: Caller | None = None
        for name, entry in self._load().items():
            if hmac.compare_digest(digest, str(entry["sha256"])):
                found = Caller(name, frozenset(str(x) for x in entry["scopes"]))  # type: ignore[attr-defined]
        return found
