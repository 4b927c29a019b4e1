"""A valid example payload for every current event family, as its kind's module declares it
(``schemas/families/``): a new family brings its own example, nothing to add here."""

from __future__ import annotations

from typing import Any

from jointbus.schemas.catalog import CURRENT

SAMPLES: dict[str, dict[str, Any]] = {family: dict(spec.example) for family, spec in CURRENT.items()}
