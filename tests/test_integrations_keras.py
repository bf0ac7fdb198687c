"""``mlledger.integrations.keras.LedgerCallback``: a real Keras 3 ``fit`` (torch backend)
trains a tiny dense model for a few steps on the CPU."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.readme import hooks_block

import mlledger
from mlledger import Ledger

keras = pytest.importorskip("keras", reason="the test extra installs it")
from mlledger.integrations.keras import LedgerCallback  # noqa: E402

pytestmark = pytest.mark.frameworks


def _data() -> tuple[Any, Any]:
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    return x, x.sum(axis=1, keepdims=True)


def _model() -> Any:
    keras.utils.set_random_seed(0)
    layers = [keras.Input((4,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]
    model = keras.Sequential(layers, name="tiny")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


class _Batches(keras.utils.PyDataset):  # type: ignore[misc]
    """Four batches of four; once Keras has begun a second pass, reading the third raises."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        if i == 2 and self.epochs:
            raise RuntimeError("corrupt batch 3")
        x, y = _data()
        return x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]

    def on_epoch_end(self) -> None:
        self.epochs += 1


def test_standalone_run_records_params_metrics_checkpoints_and_model(
    ledger: Ledger, workdir: Path
) -> None:
    """Outside any run the callback opens one: fit's arguments and the optimizer config as
    params, the loss at each global step, each ModelCheckpoint file and a loadable model."""
    (workdir / "ck").mkdir()
    (workdir / "ck" / "m-09.keras").write_text("from an earlier fit")
    x, y = _data()
    model = _model()
    ckpt = keras.callbacks.ModelCheckpoint("ck/m-{epoch:02d}.keras")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[LedgerCallback(ledger), ckpt])
    (run,) = ledger.runs()
    assert run.name == "tiny"
    assert run.status == "finished"
    assert run.params["batch_size"] == 4
    assert run.params["epochs"] == 2
    assert run.params["validation_split"] == 0.25
    assert run.params["optimizer"]["name"] == "sgd"
    assert run.params["optimizer"]["learning_rate"] == pytest.approx(0.05)
    assert run.params["loss"] == "mse"
    assert run.params["num_parameters"] == 25
    # 12 training samples in batches of 4: 3 steps an epoch; epoch ends at steps 3 and 6
    # (Keras may hand the batch logs over from a worker thread: their order may vary)
    assert sorted(s for s, _, _ in run.metric_history("loss")) == [1, 2, 3, 3, 4, 5, 6, 6]
    assert [s for s, _, _ in run.metric_history("val_loss")] == [3, 6]
    assert [v for _, v, _ in run.metric_history("epoch")] == [1.0, 2.0]
    assert run.metrics["learning_rate"] == pytest.approx(0.05)
    assert sorted(k for k in run.outputs if k.startswith("ck/")) == [
        "ck/m-01.keras",
        "ck/m-02.keras",
    ]
    ledger.restore(run.outputs["model"].digest, workdir / "final.keras")
    back = keras.saving.load_model(workdir / "final.keras")
    assert np.allclose(back.predict(x, verbose=0), model.predict(x, verbose=0))


def test_inside_an_enclosing_run_logs_into_it(ledger: Ledger) -> None:
    """Inside ``with ledger.run()`` the callback logs into that run and leaves it open."""
    x, y = _data()
    with ledger.run("experiment") as outer:
        _model().fit(x, y, batch_size=4, epochs=1, verbose=0,
                     callbacks=[LedgerCallback(log_every_n_steps=2)])
        assert mlledger.current_run() is outer
    (run,) = ledger.runs()
    assert run.id == outer.id
    assert run.status == "finished"
    assert run.params["batch_size"] == 4
    assert sorted(s for s, _, _ in run.metric_history("loss")) == [2, 4, 4]
    assert "model" in run.outputs


def test_failing_fit_ends_the_run_failed(ledger: Ledger) -> None:
    """A fit that raises ends the run it opened ``failed`` with the exception, which
    reaches the caller."""
    with pytest.raises(RuntimeError, match="corrupt batch 3"):
        _model().fit(_Batches(), epochs=2, verbose=0, callbacks=[LedgerCallback(ledger)])
    assert mlledger.current_run() is None
    (run,) = ledger.runs()
    assert run.status == "failed"
    assert run.error is not None
    assert "corrupt batch 3" in run.error.message
    assert "model" not in run.outputs


def test_no_run_and_no_ledger_uses_the_default_ledger() -> None:
    """With no active run and no ledger given, the run goes to the default ledger."""
    x, y = _data()
    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[LedgerCallback()])
    (run,) = Ledger().runs()
    assert run.name == "tiny"
    assert run.status == "finished"
    assert len(run.metric_history("loss")) == 5


def test_a_process_that_is_not_rank_zero_records_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a launcher that says this process is rank 1, nothing is recorded."""
    monkeypatch.setenv("RANK", "1")
    x, y = _data()
    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[LedgerCallback(ledger)])
    assert ledger.runs() == []


def test_epoch_logging_only(ledger: Ledger) -> None:
    """``log_every_n_steps=0`` logs at epoch ends only, at the global step."""
    x, y = _data()
    callback = LedgerCallback(ledger, log_every_n_steps=0)
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    (run,) = ledger.runs()
    assert [s for s, _, _ in run.metric_history("loss")] == [4, 8]


def test_a_bad_step_count_is_a_value_error() -> None:
    """``log_every_n_steps`` takes a count of batches; anything else fails at construction."""
    with pytest.raises(ValueError, match="count of batches"):
        LedgerCallback(log_every_n_steps=-1)


def test_readme_block_runs(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """The README's Keras block runs as written and records one finished run."""
    monkeypatch.setenv("MLLEDGER_URL", str(workdir.parent / "readme-store"))
    x, y = _data()
    namespace = {"__name__": "__readme__", "model": _model(), "x": x, "y": y}
    exec(compile(hooks_block("keras"), "README.md", "exec"), namespace)  # our docs
    (run,) = Ledger().runs()
    assert run.status == "finished"
    assert {"ckpt/model-01.keras", "ckpt/model-02.keras", "model"} <= set(run.outputs)


def test_on_a_cpu_the_batch_call_stays_in_the_loop(ledger: Ledger) -> None:
    """Training on the CPU (this machine has no GPU), the callback is not offered to
    Keras's worker thread (async_safe False: a call in the loop is cheaper there), and
    every batch's logs still reach the run at its global step."""
    import torch

    cb = LedgerCallback(ledger)
    assert cb.async_safe is torch.cuda.is_available() is False
    x = np.random.default_rng(1).random((8, 4), dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=2, epochs=2, verbose=0, callbacks=[cb])
    (run,) = ledger.runs()
    assert sorted(s for s, _, _ in run.metric_history("loss")) == [1, 2, 3, 4, 4, 5, 6, 7, 8, 8]
