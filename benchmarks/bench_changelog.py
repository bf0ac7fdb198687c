"""The changelog of a ref with 100 moves, against reading the ref's history alone.

    python benchmarks/run.py changelog [--quick]

Target (issue 16): ``ledger.changelog(ref)`` of a ref with 100 moves in <= 200 ms on a
local store, catalog synced; the ratio is to ``ledger.refs.history(ref)`` (listing and
reading the ref's entries, what every changelog must do) timed in the same rounds.  An
informational row times what the changelog spares: one ``ledger.get`` and one
``ledger.diff`` per move, each reading its runs' environment objects again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _common import Parts, Row, ab, fs_type, measure, workdir

#: moves of the ref, runs made, runs per environment (a new environment object each)
FULL = {"moves": 100, "runs": 60, "env_every": 6, "repeat": 9}
QUICK = {"moves": 20, "runs": 12, "env_every": 4, "repeat": 5}
REF = "model/prod"


def build(root: Path, cfg: dict[str, int]) -> tuple[str, int]:
    """A store whose ref moved ``moves`` times over ``runs`` runs: params, data and the
    environment change along the way, every seventh move is a rollback.  Returns the
    store's URL and how many distinct environment objects its runs hold."""
    from mlledger import Ledger
    from mlledger.capture import environment as envmod

    url = str(root / "store")
    data = root / "data.csv"
    ledger = Ledger(url, capture_files=False)
    run_ids: list[str] = []
    envs = 0
    saved = os.environ.get("OMP_NUM_THREADS")
    try:
        for i in range(cfg["runs"]):
            if i % cfg["env_every"] == 0:  # another environment: a new object in the store
                os.environ["OMP_NUM_THREADS"] = str(1 + i // cfg["env_every"])
                envmod.clear_cache()
                ledger = Ledger(url, capture_files=False)
                envs += 1
            data.write_text("x\n" + "\n".join(str(j) for j in range(i % 7 + 2)) + "\n")
            with ledger.run(
                "train",
                params={"lr": 0.1 * (1 + i % 5), "batch": 32 * (1 + i % 3), "depth": i % 4},
            ) as run:
                run.use(str(data), name="data")
                for step in range(5):
                    run.log(step=step, loss=1 / (i + step + 1), accuracy=0.5 + i / 1000)
                run.save({"weights": i}, name="model")
            run_ids.append(run.id)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
        envmod.clear_cache()
    for m in range(cfg["moves"]):
        if m % 7 == 6:
            ledger.refs.rollback(REF, message=f"move {m}: back")
        else:
            rid = run_ids[(m * 5) % len(run_ids)]
            ledger.refs.set(REF, f"{rid}/model", message=f"move {m}")
    return url, envs


def naive(ledger: Any) -> int:
    """Per move: the target's run by ``ledger.get`` and a full ``ledger.diff`` with the
    run before (what a script without the changelog would do)."""
    history = ledger.refs.history(REF)
    n = 0
    prev = None
    for e in history:
        run = ledger.get(e.run)
        if prev is not None:
            n += len(ledger.diff(prev, run))
        prev = run
    return n


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("changelog", quick)
    with workdir("changelog") as tmp:
        parts.run("changelog", lambda: _bench(tmp, cfg))
    return parts.report()


def _bench(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    from mlledger import Ledger

    url, envs = build(tmp, cfg)
    ledger = Ledger(url)
    ledger.sync()
    moves, repeat = cfg["moves"], cfg["repeat"]
    log = ledger.changelog(REF)
    assert len(log.entries) == moves, len(log.entries)
    assert any(e.causes for e in log.entries)

    def changelog_text() -> None:
        ledger.changelog(REF).to_text()

    res = ab(changelog_text, lambda: ledger.refs.history(REF), repeat)
    rows = Row.from_ab(
        f"changelog of {moves} moves (build + to_text)",
        res,
        "ledger.refs.history (the ref's entries alone)",
        target="<= 200 ms",
    )
    rows[0].passed = res.a.median <= 0.200 if moves >= 100 else None
    rendered = measure(lambda: (log.to_markdown(), log.to_json()), repeat)
    rows.append(Row.from_timing("  to_markdown + to_json of it", rendered, target="info"))
    limited = measure(lambda: ledger.changelog(REF, limit=10), repeat)
    rows.append(Row.from_timing("  changelog --limit 10", limited, target="info"))
    slow = ab(lambda: naive(ledger), changelog_text, max(5, repeat // 2))
    rows.append(
        Row.from_timing(
            f"  naive: {moves} x (ledger.get + ledger.diff)",
            slow.a,
            ratio=slow.ratio,
            target="info",
            note="ratio to the changelog in the same rounds",
        )
    )
    notes = [
        f"local store in {tmp} ({fs_type(tmp)}), page cache warm, catalog synced; "
        f"{moves} moves (every 7th a rollback) over {cfg['runs']} runs with "
        f"{envs} environment objects (OMP_NUM_THREADS changed every {cfg['env_every']} runs), "
        "params, a data input and 2 metrics each",
    ]
    if moves < 100:
        notes.append("quick sizes: the 200 ms target applies to 100 moves, not judged here")
    return rows, notes


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
