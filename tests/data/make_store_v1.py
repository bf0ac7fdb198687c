"""Writes ``store_v1/``: a small store in the format of mlledger before the audit chain.

Kept to show how the committed store was made; running it with a newer
mlledger writes that version's format instead.  Identity and paths are
neutral values (no real user, host or folder gets into the repo)::

    cd "$(mktemp -d)" && python /path/to/tests/data/make_store_v1.py OUT
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from pathlib import Path


def main(out: str) -> None:
    socket.gethostname = lambda: "build-host"  # type: ignore[assignment]
    getpass.getuser = lambda: "builder"  # type: ignore[assignment]
    os.environ["USER"] = os.environ["LOGNAME"] = "builder"
    import mlledger

    ledger = mlledger.Ledger(out, capture_files=False, start_delay=0.0)
    work = Path("work")
    (work / "model").mkdir(parents=True)
    (work / "model" / "weights.bin").write_bytes(bytes(range(256)) * 8)
    (work / "model" / "config.json").write_text('{"layers": 2}\n')
    with ledger.run("prepare", params={"n": 3}, message="first") as run:
        run.log(step=1, loss=0.5)
        time.sleep(0.2)  # long enough for a start entry of its own
        run.save(str(work / "model"), name="model")
    with ledger.run("train", params={"lr": 0.1}) as run:
        run.log(step=1, loss=0.4)
        run.save({"acc": 0.9}, name="scores")
    ledger.start_delay = 10.0
    with ledger.run("quick", params={"lr": 0.2}) as run:  # one entry: ended before its start
        run.save({"acc": 0.8}, name="scores")
    runs = ledger.runs()
    first = next(r for r in runs if r.name == "prepare")
    train = next(r for r in runs if r.name == "train")
    quick = next(r for r in runs if r.name == "quick")
    ledger.refs.set("model/prod", f"{first.id}/model", message="ship")
    ledger.refs.set("model/prod", f"{train.id}/scores", message="try scores")
    ledger.refs.rollback("model/prod", message="back")
    ledger.refs.set("eval/best", quick.id)


if __name__ == "__main__":
    main(sys.argv[1])
