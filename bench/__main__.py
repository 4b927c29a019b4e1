"""``make bench``: run every benchmark and print its figures as JSON lines."""

from __future__ import annotations

import json
import sys

from bench import contract


def main() -> None:
    which = set(sys.argv[1:]) or {"contract"}
    if "contract" in which:
        print(json.dumps({"bench": "contract", **contract.run()}, ensure_ascii=False), flush=True)


main()
