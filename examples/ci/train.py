"""A small training script for the CI example (standard library only).

Fits a one-feature threshold classifier on generated data and logs its
accuracy into the run ``mlledger run`` records it in:

    mlledger run --name train -m "why" examples/ci/train.py --seed 3
"""

from __future__ import annotations

import argparse
import random

import mlledger


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = [
        (x, int(x + rng.gauss(0, args.noise) > 0.5)) for x in (rng.random() for _ in range(2000))
    ]
    train, test = data[:1500], data[1500:]
    best = max(
        (t / 100 for t in range(101)),
        key=lambda t: sum((x > t) == y for x, y in train),
    )
    accuracy = sum((x > best) == y for x, y in test) / len(test)
    run = mlledger.current_run()
    if run is not None:  # None under MLLEDGER_DISABLE=1
        run.log(accuracy=accuracy, threshold=best)
    print(f"threshold {best:.2f}, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
