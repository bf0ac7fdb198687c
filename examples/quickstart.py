"""mlledger quickstart: track a small training script, change one thing, ask what changed.

Runs on the base install (pure Python, no numpy): it writes a CSV of
generated data, trains a logistic regression twice with a different learning
rate, then shows what the ledger recorded, the diff between the two runs, the
lineage of the model, and restores the model file and a report folder by
digest into a new place, byte for byte.

    python examples/quickstart.py            # uses $MLLEDGER_URL or the default local store
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

import mlledger


def make_data(path: Path, n: int = 400, seed: int = 7) -> Path:
    """Write a CSV of two features and a 0/1 label."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "y"])
        for _ in range(n):
            x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
            y = 1 if x1 + 0.5 * x2 + rng.gauss(0, 0.3) > 0 else 0
            w.writerow([f"{x1:.5f}", f"{x2:.5f}", y])
    return path


@mlledger.tracked
def train(data: Path, lr: float = 0.1, epochs: int = 30, out: str = "model.json") -> dict[str, float]:
    """Logistic regression by gradient descent; logs loss and accuracy per epoch."""
    with open(data, newline="") as f:
        rows = [(float(r["x1"]), float(r["x2"]), int(r["y"])) for r in csv.DictReader(f)]
    w1 = w2 = b = 0.0
    run = mlledger.current_run()
    acc = loss = 0.0
    for epoch in range(epochs):
        g1 = g2 = gb = 0.0
        loss = 0.0
        correct = 0
        for x1, x2, y in rows:
            p = 1 / (1 + math.exp(-(w1 * x1 + w2 * x2 + b)))
            loss -= y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12)
            g1 += (p - y) * x1
            g2 += (p - y) * x2
            gb += p - y
            correct += (p > 0.5) == (y == 1)
        n = len(rows)
        w1, w2, b = w1 - lr * g1 / n, w2 - lr * g2 / n, b - lr * gb / n
        loss, acc = loss / n, correct / n
        if run is not None:
            run.log(step=epoch, loss=loss, accuracy=acc)
    with open(out, "w") as f:  # seen by the ledger as an output file
        json.dump({"w1": w1, "w2": w2, "b": b}, f)
    os.makedirs("report", exist_ok=True)
    with open("report/summary.txt", "w") as f:
        f.write(f"lr={lr} loss={loss:.4f} accuracy={acc:.3f}\n")
    return {"loss": loss, "accuracy": acc}


def main() -> int:
    ledger = mlledger.default_ledger()
    print(f"store: {ledger.url}")
    work = Path(tempfile.mkdtemp(prefix="mlledger-quickstart-"))
    os.chdir(work)
    data = make_data(work / "train.csv")

    first = train(data, lr=0.1)
    second = train(data, lr=0.5)  # one change: the learning rate
    print(f"run 1 -> {first}\nrun 2 -> {second}")

    a, b = ledger.runs(name="train", limit=2)[::-1]
    print(f"\nrecorded run {b.id}: params={b.params}")
    print(f"  metrics (last): {b.metrics}")
    print(f"  inputs:  {{{', '.join(f'{k}: {v.digest[:18]}' for k, v in b.inputs.items())}}}")
    print(f"  outputs: {{{', '.join(f'{k}: {v.digest[:18]}' for k, v in b.outputs.items())}}}")
    print(f"  python {b.env['python']['version']}, {len(b.env['packages'])} packages, "
          f"{b.resources['wall_s']:.3f} s wall")

    print("\nwhat changed between the two runs:")
    print(ledger.diff(a, b).to_text())

    print(ledger.lineage(f"{b.id}/model.json").to_text())

    # store a file and a folder, restore both by digest into a new place, verify
    model = ledger.store.put("model.json")
    report = ledger.store.put("report")
    dest = work / "restored"
    ledger.restore(model.digest, dest / "model.json")
    ledger.restore(report.digest, dest / "report")
    same_model = (dest / "model.json").read_bytes() == Path("model.json").read_bytes()
    same_report = (dest / "report/summary.txt").read_bytes() == Path("report/summary.txt").read_bytes()
    print(f"restored {model.digest[:18]} (file) and {report.digest[:18]} (tree, {report.files} file): "
          f"byte-identical={same_model and same_report}")
    ledger.refs.set("quickstart/model", f"{b.id}/model.json", message="best of two")
    report_v = ledger.verify()
    print(f"verify: {'ok' if report_v.ok else 'DAMAGED'} ({report_v.checked} objects checked)")
    return 0 if (same_model and same_report and report_v.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
