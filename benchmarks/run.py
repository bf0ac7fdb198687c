"""Run every ``benchmarks/bench_*.py`` module's ``main()`` and summarize.

    python benchmarks/run.py            # full sizes (minutes)
    python benchmarks/run.py --quick    # small sizes: a smoke test (seconds)
    python benchmarks/run.py store      # only modules whose name contains "store"

Exit status: 0, or 1 with ``--strict`` when a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import Row, machine, machine_notes  # noqa: E402 - needs HERE on sys.path first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("only", nargs="*", help="run only modules whose name contains one of these")
    args = parser.parse_args(argv)

    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    print(f"mlledger benchmarks{' (--quick)' if args.quick else ''}: {machine()}")
    print(f"modules: {', '.join(names) or '(none)'}")
    for note in machine_notes():
        print(f"* {note}")
    print(flush=True)

    results: dict[str, list[Row]] = {}
    failed: list[str] = []
    for name in names:
        began = time.perf_counter()
        try:
            module = importlib.import_module(name)
            results[name] = list(module.main(quick=args.quick) or [])
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - began:.0f} s)\n", flush=True)

    rows = [r for rs in results.values() for r in rs]
    passed = sum(r.passed is True for r in rows)
    missed = [r.figure.strip() for r in rows if r.passed is False]
    print(f"summary: {passed} PASS, {len(missed)} MISS, {len(failed)} module(s) failed")
    for m in missed:
        print(f"  MISS: {m}")
    for f in failed:
        print(f"  FAILED: {f}")
    if failed or (args.strict and missed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
