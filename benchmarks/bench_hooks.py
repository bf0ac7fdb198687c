"""Framework hooks: what recording a training costs the training.

For each framework a tiny model trains for a fixed number of steps on the CPU,
in rounds A B A B: A with mlledger's hook (a run it opens and closes on a local
store, params, a metric log at every step, the final model stored), B the same
training without it.  Both sides log every step to the framework's own
machinery and save no checkpoints, so the difference is the hook.  Target:
each hook adds at most 2 % to the training's wall time.

1. Hugging Face ``Trainer``: a 1-layer GPT-2 (8 wide, vocabulary 16), batch 2; the
   note gives the time spent inside the hook's own methods, which load does not blur.
2. Lightning ``Trainer.fit``: a 4-4-1 MLP, batch 2.
3. Keras ``fit`` (torch backend): a 4-4-1 MLP, batch 2.

Run through ``python benchmarks/run.py hooks`` (``--quick``: fewer steps).
A framework that is not installed skips its row with a note.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

from _common import Parts, Row, ab, workdir

#: steps per framework: each side of a round takes a few seconds on an idle 2-core machine
#: (the HF Trainer's step is ~4x Lightning's here: 600 steps make each side ~2 s, as the others)
FULL = {"hf_steps": 600, "steps": 2000, "repeat": 9}
QUICK = {"hf_steps": 120, "steps": 400, "repeat": 5}
MAX_RATIO = 1.02


def _compare(
    label: str, with_hook: Callable[[], Any], without: Callable[[], Any], cfg: dict[str, int],
    steps: int, inside: list[float] | None = None,
) -> tuple[list[Row], list[str]]:
    res = ab(with_hook, without, cfg["repeat"])
    load = os.getloadavg()[0]
    note = f"load {load:.1f} on {os.cpu_count()} CPUs"
    if inside:  # seconds spent in the hook's own methods, each training with it
        own = statistics.median(inside)
        note += f"; in the hook {own * 1e3:.1f} ms a training ({own / res.b.median:.1%})"
    rows = Row.from_ab(
        f"{label}, {steps} steps, with the hook",
        res,
        "the same training without it",
        max_ratio=MAX_RATIO,
        note=note,
    )
    return rows, []


def bench_transformers(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    import torch
    import transformers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    import mlledger
    from mlledger.integrations.transformers import LedgerCallback

    transformers.logging.set_verbosity_error()
    ledger = mlledger.Ledger(tmp / "store-hf")
    inside: list[float] = []

    class Timed(LedgerCallback):  # type: ignore[misc]
        """The hook, timing its own methods (the Trainer's callback loop calls them)."""

        spent = 0.0

        def _timed(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                self.spent += time.perf_counter() - t0

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            self._timed(LedgerCallback.on_train_begin, *a, **k)

        def on_log(self, *a: Any, **k: Any) -> None:
            self._timed(LedgerCallback.on_log, *a, **k)

        def on_save(self, *a: Any, **k: Any) -> None:
            self._timed(LedgerCallback.on_save, *a, **k)

        def on_train_end(self, *a: Any, **k: Any) -> None:
            self._timed(LedgerCallback.on_train_end, *a, **k)
            inside.append(self.spent)
    g = torch.Generator().manual_seed(0)
    items = [torch.randint(0, 16, (8,), generator=g) for _ in range(2 * cfg["hf_steps"])]
    data = [{"input_ids": t, "labels": t} for t in items]

    def train(callbacks: list[Any]) -> None:
        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2, bos_token_id=0,
            eos_token_id=0,
        )
        args = TrainingArguments(
            output_dir=str(tmp / "hf-out"), max_steps=cfg["hf_steps"],
            per_device_train_batch_size=2, logging_steps=1, save_strategy="no",
            report_to="none", use_cpu=True, disable_tqdm=True,
        )
        trainer = Trainer(
            model=GPT2LMHeadModel(config), args=args, train_dataset=data, callbacks=callbacks
        )
        trainer.remove_callback(PrinterCallback)  # the logs still go to every callback
        trainer.train()

    return _compare(
        "1. HF Trainer, tiny GPT-2",
        lambda: train([Timed(ledger)]),
        lambda: train([]),
        cfg,
        cfg["hf_steps"],
        inside,
    )


def bench_lightning(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    import lightning as L
    import torch

    import mlledger
    from mlledger.integrations.lightning import LedgerLogger

    for name in ("lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ledger = mlledger.Ledger(tmp / "store-lightning")
    x = torch.randn(2 * cfg["steps"], 4, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))

    class Net(L.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def fit(logger: Any) -> None:
        torch.manual_seed(0)
        trainer = L.Trainer(
            max_epochs=1, logger=logger, default_root_dir=str(tmp / "pl"), accelerator="cpu",
            log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False,
        )
        trainer.fit(Net(), torch.utils.data.DataLoader(data, batch_size=2))

    from lightning.pytorch.loggers import CSVLogger

    # the baseline keeps a logger of Lightning's own (CSV), so both sides pay Lightning's
    # logging path: the difference is what LedgerLogger adds
    return _compare(
        "2. Lightning fit, tiny MLP (vs CSVLogger)",
        lambda: fit(LedgerLogger(ledger)),
        lambda: fit(CSVLogger(str(tmp / "csv"))),
        cfg,
        cfg["steps"],
    )


def bench_keras(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
    import keras
    import numpy as np

    import mlledger
    from mlledger.integrations.keras import LedgerCallback

    ledger = mlledger.Ledger(tmp / "store-keras")
    x = np.random.default_rng(0).random((2 * cfg["steps"], 4), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)

    def fit(callbacks: list[Any]) -> None:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)

    return _compare(
        "3. Keras fit (torch backend), tiny MLP",
        lambda: fit([LedgerCallback(ledger)]),
        lambda: fit([]),
        cfg,
        cfg["steps"],
    )


def _guarded(
    name: str, fn: Callable[[Path, dict[str, int]], tuple[list[Row], list[str]]]
) -> Callable[[Path, dict[str, int]], tuple[list[Row], list[str]]]:
    def run(tmp: Path, cfg: dict[str, int]) -> tuple[list[Row], list[str]]:
        try:
            __import__(name)
        except ImportError:
            return [], [f"{name} is not installed: its row is skipped (pip install '.[test]')"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(tmp, cfg)

    return run


def main(quick: bool = False) -> list[Row]:
    cfg = QUICK if quick else FULL
    parts = Parts("hooks", quick)
    with workdir("hooks") as tmp:
        for name, fn in (
            ("transformers", bench_transformers),
            ("lightning", bench_lightning),
            ("keras", bench_keras),
        ):
            runner = _guarded(name, fn)
            parts.run(name, lambda runner=runner: runner(tmp, cfg))  # type: ignore[misc]
    return parts.report()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
