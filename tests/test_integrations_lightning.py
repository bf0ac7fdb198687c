"""``mlledger.integrations.lightning.LedgerLogger``: a real Lightning ``Trainer`` fits a
tiny regression module for a few steps on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.readme import hooks_block

import mlledger
from mlledger import Ledger

torch = pytest.importorskip("torch", reason="the test extra installs it")
L = pytest.importorskip("lightning", reason="the test extra installs it")

from mlledger.integrations.lightning import LedgerLogger  # noqa: E402

pytestmark = pytest.mark.frameworks


class Regressor(L.LightningModule):  # type: ignore[misc,name-defined]
    """y = x·w, trained with MSE; raises at global step ``fail_at`` when given."""

    def __init__(self, lr: float = 0.05, hidden: int = 4, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, _: int) -> Any:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("diverged at step 3")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=2)


def _fit(logger: LedgerLogger, root: Path, module: Any = None) -> Any:
    torch.manual_seed(0)
    module = module or Regressor()
    trainer = L.Trainer(
        max_epochs=2,
        logger=logger,
        default_root_dir=str(root),
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, _loader(), _loader())
    return trainer, module


def test_standalone_run_records_hparams_metrics_checkpoints_and_model(
    ledger: Ledger, workdir: Path
) -> None:
    """Outside any run the logger opens one: the module's hyperparameters, each logged
    loss at its global step, every checkpoint file saved, and a loadable final model."""
    trainer, module = _fit(LedgerLogger(ledger), workdir)
    (run,) = ledger.runs()
    assert run.name == "lightning"
    assert run.status == "finished"
    assert run.params["lr"] == 0.05
    assert run.params["hidden"] == 4
    assert run.params["model_class"].endswith("Regressor")
    assert run.params["num_parameters"] == 4 * 4 + 4 + 4 + 1
    assert [s for s, _, _ in run.metric_history("train_loss")] == list(range(8))
    assert [s for s, _, _ in run.metric_history("val_loss")] == [3, 7]
    ckpts = sorted(k for k in run.outputs if k.endswith(".ckpt"))
    assert ckpts == [
        f"lightning/{run.id}/checkpoints/epoch=0-step=4.ckpt",
        f"lightning/{run.id}/checkpoints/epoch=1-step=8.ckpt",
    ]
    assert not (workdir / ckpts[0]).exists()  # replaced by the better one, kept in the store
    ledger.restore(run.outputs["model"].digest, workdir / "final.ckpt")
    back = Regressor.load_from_checkpoint(workdir / "final.ckpt")
    assert back.hparams.lr == 0.05
    for a, b in zip(back.state_dict().values(), module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert trainer.logger.experiment == run  # the run of the fit, ended with it
    assert trainer.logger.version == run.id
    assert len(ledger.runs()) == 1


def test_inside_an_enclosing_run_fit_and_test_log_into_it(ledger: Ledger, workdir: Path) -> None:
    """Inside ``with ledger.run()`` the fit and a later test both log into that run."""
    with ledger.run("experiment") as outer:
        logger = LedgerLogger()
        trainer, module = _fit(logger, workdir)
        assert logger.experiment is outer
        trainer.validate(module, _loader())
        assert outer.active
    (run,) = ledger.runs()
    assert run.id == outer.id
    assert run.status == "finished"
    assert run.params["lr"] == 0.05
    assert len(run.metric_history("val_loss")) == 3
    assert "model" in run.outputs


def test_failing_fit_ends_the_run_failed(ledger: Ledger, workdir: Path) -> None:
    """A fit that raises ends the run it opened ``failed`` with the exception, which
    reaches the caller; the steps before it are recorded."""
    with pytest.raises(RuntimeError, match="diverged at step 3"):
        _fit(LedgerLogger(ledger), workdir, Regressor(fail_at=3))
    assert mlledger.current_run() is None
    (run,) = ledger.runs()
    assert run.status == "failed"
    assert run.error is not None
    assert "diverged at step 3" in run.error.message
    assert [s for s, _, _ in run.metric_history("train_loss")] == [0, 1, 2]
    assert "model" not in run.outputs


def test_no_run_and_no_ledger_uses_the_default_ledger(workdir: Path) -> None:
    """With no active run and no ledger given, the run goes to the default ledger."""
    _fit(LedgerLogger(name="regressor"), workdir)
    (run,) = Ledger().runs()
    assert run.name == "regressor"
    assert run.status == "finished"
    assert len(run.metric_history("train_loss")) == 8


def test_readme_block_runs(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """The README's Lightning block runs as written and records one finished run."""
    monkeypatch.setenv("MLLEDGER_URL", str(workdir.parent / "readme-store"))
    namespace = {"__name__": "__readme__", "module": Regressor(), "train_loader": _loader()}
    exec(compile(hooks_block("lightning"), "README.md", "exec"), namespace)  # our docs
    (run,) = Ledger().runs()
    assert run.status == "finished"
    assert run.params["lr"] == 0.05
    assert "model" in run.outputs
