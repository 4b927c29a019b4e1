"""``make bench``: run every benchmark and print its figures as JSON lines."""

from __future__ import annotations

import json
import sys

from bench import auditlog, cli, console, contract, deadlines, e2e, gateway, hostile, router, witness


def main() -> None:
    which = set(sys.argv[1:]) or {
        "contract",
        "hostile",
        "audit",
        "router",
        "deadlines",
        "e2e",
        "cli",
        "witness",
        "gateway",
        "console",
    }
    if "contract" in which:
        print(json.dumps({"bench": "contract", **contract.run()}, ensure_ascii=False), flush=True)
    if "hostile" in which:
        print(json.dumps({"bench": "hostile", **hostile.run()}, ensure_ascii=False), flush=True)
    if "audit" in which:
        print(json.dumps({"bench": "audit", **auditlog.run()}, ensure_ascii=False), flush=True)
    if "router" in which:
        print(json.dumps({"bench": "router", **router.run()}, ensure_ascii=False), flush=True)
    if "deadlines" in which:
        print(json.dumps({"bench": "deadlines", **deadlines.run()}, ensure_ascii=False), flush=True)
    if "cli" in which:
        print(json.dumps({"bench": "cli", **cli.run()}, ensure_ascii=False), flush=True)
    if "witness" in which:
        print(json.dumps({"bench": "witness", **witness.run()}, ensure_ascii=False), flush=True)
    if "gateway" in which:
        print(json.dumps({"bench": "gateway", **gateway.run()}, ensure_ascii=False), flush=True)
    if "console" in which:
        print(json.dumps({"bench": "console", **console.run()}, ensure_ascii=False), flush=True)
    if "e2e" in which:
        print(json.dumps({"bench": "e2e", **e2e.run()}, ensure_ascii=False), flush=True)


main()
