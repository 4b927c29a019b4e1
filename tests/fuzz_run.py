"""Coverage-guided fuzzing of every registered target under atheris (``make fuzz``).

    python -m tests.fuzz_run [--seconds N] [TARGET ...]

Each target runs in a process of its own, starting from its seeds; an input that makes it
raise is kept under ``tests/regressions/<target>/`` (then ``make test`` runs it forever).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import structlog

from tests.fuzzing import REGRESSIONS, TARGETS


def _one(name: str, seconds: int) -> int:
    """Run target ``name`` under atheris in this process (never returns normally)."""
    import atheris  # type: ignore[import-not-found]

    from tests.test_fuzz_regressions import load_targets

    load_targets()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    atheris.instrument_all()  # coverage of every module loaded: jointbus and what it uses
    target = TARGETS[name]
    corpus = Path(tempfile.mkdtemp(prefix=f"jointbus-fuzz-{name}-"))
    for i, seed in enumerate(target.seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    (REGRESSIONS / name).mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        target.run(data)

    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={seconds}",
            f"-artifact_prefix={REGRESSIONS / name}/",
            "-rss_limit_mb=4096",
            str(corpus),
        ],
        one_input,
    )
    atheris.Fuzz()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("targets", nargs="*")
    args = parser.parse_args()
    if args.one:
        return _one(args.one, args.seconds)
    from tests.test_fuzz_regressions import load_targets

    load_targets()
    names = args.targets or sorted(TARGETS)
    failed = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] fuzzing {name} for {args.seconds} s", flush=True)
        code = subprocess.call(
            [sys.executable, "-m", "tests.fuzz_run", "--one", name, "--seconds", str(args.seconds)]
        )
        if code != 0:
            failed.append(name)
            print(f"  {name}: failing input kept under {REGRESSIONS / name}/", flush=True)
    if failed:
        print(f"fuzzing found failures in: {', '.join(failed)}", flush=True)
        return 1
    print(f"{len(names)} targets fuzzed, no failure", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
