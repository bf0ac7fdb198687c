"""Track a scikit-learn training run with mlledger (extra: ``pip install "mlledger[examples]"``).

A generated classification set flows from one tracked step to the next as a
numpy array (one artifact, one digest, so the two runs are linked); the
model is saved with pickle to a file the ledger sees being written.  Run
twice with a different regularization strength, then print the diff and
the model's lineage.

    python examples/sklearn_train.py
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import mlledger


@mlledger.tracked
def make_dataset(n_samples: int = 500, seed: int = 0) -> np.ndarray:
    """Features and label in one array (label in the last column)."""
    x, y = make_classification(n_samples=n_samples, n_features=8, random_state=seed)
    return np.column_stack([x, y])


@mlledger.tracked
def fit(data: np.ndarray, c: float = 1.0, model_path: str = "model.pkl") -> float:
    """Fit a logistic regression; log train and test accuracy; save the model."""
    x, y = data[:, :-1], data[:, -1].astype(int)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0)
    model = LogisticRegression(C=c, max_iter=500).fit(x_tr, y_tr)
    run = mlledger.current_run()
    train_acc, test_acc = model.score(x_tr, y_tr), model.score(x_te, y_te)
    if run is not None:
        run.log(train_accuracy=train_acc, test_accuracy=test_acc)
    with open(model_path, "wb") as f:
        pickle.dump(model, f)
    return float(test_acc)


def main() -> int:
    ledger = mlledger.default_ledger()
    os.chdir(tempfile.mkdtemp(prefix="mlledger-sklearn-"))
    data = make_dataset()
    print("C=1.0  ->", fit(data, c=1.0))
    print("C=0.01 ->", fit(data, c=0.01))
    b, a = ledger.runs(name="fit", limit=2)
    print(ledger.diff(a, b).to_text())
    print(ledger.lineage(f"{b.id}/model.pkl").to_text())
    same = a.inputs["data"].digest == b.inputs["data"].digest
    produced = ledger.runs(name="make_dataset", limit=1)[0].outputs["return"].digest
    print(f"both fits read the dataset produced by make_dataset: {same and produced == a.inputs['data'].digest}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
