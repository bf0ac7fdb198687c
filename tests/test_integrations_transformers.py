"""``mlledger.integrations.transformers.LedgerCallback``: a real ``Trainer`` trains a tiny
GPT-2 (built here, nothing downloaded) for a few steps on the CPU."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from helpers.readme import hooks_block

import mlledger
from mlledger import Ledger, LedgerWarning

torch = pytest.importorskip("torch", reason="the test extra installs it")
transformers = pytest.importorskip("transformers", reason="the test extra installs it")
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainingArguments,
)

from mlledger.integrations.transformers import LedgerCallback  # noqa: E402

pytestmark = pytest.mark.frameworks


def _model() -> Any:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config)


class _Data(torch.utils.data.Dataset):  # type: ignore[misc]
    """Eight random sequences; item ``fail_at`` (if any) raises."""

    def __init__(self, fail_at: int | None = None) -> None:
        g = torch.Generator().manual_seed(1)
        self.items = [torch.randint(0, 16, (8,), generator=g) for _ in range(8)]
        self.fail_at = fail_at

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i == self.fail_at:
            raise RuntimeError("bad sample 5")
        return {"input_ids": self.items[i], "labels": self.items[i]}


def _trainer(callback: Any, out: Path, data: Any = None, cls: type = Trainer) -> Any:
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=2,
        learning_rate=0.01,
        logging_steps=1,
        save_steps=2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    return cls(model=_model(), args=args, train_dataset=data or _Data(), callbacks=[callback])


def test_standalone_run_records_params_metrics_checkpoints_and_model(
    ledger: Ledger, workdir: Path
) -> None:
    """Outside any run the callback opens one: the arguments and model config as params,
    each logged loss at its global step, both checkpoint folders and a loadable model."""
    _trainer(LedgerCallback(ledger), workdir / "out").train()
    (run,) = ledger.runs()
    assert run.name == "GPT2LMHeadModel"
    assert run.status == "finished"
    assert run.params["learning_rate"] == 0.01
    assert run.params["max_steps"] == 4
    assert run.params["model"]["n_embd"] == 8
    assert run.params["model_class"].endswith("GPT2LMHeadModel")
    assert run.params["num_parameters"] > 0
    assert [s for s, _, _ in run.metric_history("loss")] == [1, 2, 3, 4]
    assert [s for s, _, _ in run.metric_history("learning_rate")] == [1, 2, 3, 4]
    assert "train_runtime" in run.metrics
    assert {"out/checkpoint-2", "out/checkpoint-4"} <= set(run.outputs)
    assert run.outputs["out/checkpoint-2"].kind == "tree"
    assert not any("checkpoint" in k for k in run.inputs)
    model = run.outputs["model"]
    assert model.kind == "tree"
    ledger.restore(model.digest, workdir / "restored")
    back = GPT2LMHeadModel.from_pretrained(workdir / "restored")
    assert back.config.n_embd == 8


def test_inside_an_enclosing_run_logs_into_it(ledger: Ledger, workdir: Path) -> None:
    """Inside ``with ledger.run()`` the callback logs into that run and leaves it open."""
    with ledger.run("finetune") as outer:
        _trainer(LedgerCallback(), workdir / "out").train()
        assert outer.active
        assert mlledger.current_run() is outer
    (run,) = ledger.runs()
    assert run.id == outer.id
    assert run.status == "finished"
    assert run.params["num_parameters"] > 0
    assert len(run.metric_history("loss")) == 4
    assert "model" in run.outputs
    assert "out/checkpoint-4" in run.outputs


def test_failing_training_ends_the_run_failed(ledger: Ledger, workdir: Path) -> None:
    """A training that raises ends the run it opened ``failed``, with the exception, and the
    exception reaches the caller unchanged; no run is left active."""
    with pytest.raises(RuntimeError, match="bad sample 5"):
        _trainer(LedgerCallback(ledger), workdir / "out", _Data(fail_at=5)).train()
    assert mlledger.current_run() is None
    (run,) = ledger.runs()
    assert run.status == "failed"
    assert run.error is not None
    assert "bad sample 5" in run.error.message
    assert "model" not in run.outputs


def test_no_run_and_no_ledger_uses_the_default_ledger(workdir: Path) -> None:
    """With no active run and no ledger given, the run goes to the default ledger."""
    _trainer(LedgerCallback(name="tiny-gpt"), workdir / "out").train()
    (run,) = Ledger().runs()
    assert run.name == "tiny-gpt"
    assert run.status == "finished"
    assert len(run.metric_history("loss")) == 4


def test_unreachable_ledger_warns_once_and_training_goes_on(workdir: Path) -> None:
    """A ledger that cannot be opened costs one LedgerWarning; the training completes."""
    (workdir / "file").write_text("not a folder")
    with pytest.warns(LedgerWarning, match="untracked"):
        out = _trainer(LedgerCallback(str(workdir / "file" / "store")), workdir / "out").train()
    assert out.global_step == 4


def test_only_world_rank_zero_records(ledger: Ledger, workdir: Path) -> None:
    """A process that is not world rank 0 records nothing."""

    class OtherRank(Trainer):  # type: ignore[misc]
        def is_world_process_zero(self) -> bool:
            return False

    with warnings.catch_warnings():
        warnings.simplefilter("error", LedgerWarning)
        _trainer(LedgerCallback(ledger), workdir / "out", cls=OtherRank).train()
    assert ledger.runs() == []


def test_a_bad_ledger_argument_is_a_type_error() -> None:
    """``ledger=`` takes a Ledger or a URL: anything else fails at construction."""
    with pytest.raises(TypeError, match=r"takes a mlledger\.Ledger or a store URL"):
        LedgerCallback(ledger=42)


def test_readme_block_runs(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """The README's Hugging Face block runs as written and records one finished run."""
    monkeypatch.setenv("MLLEDGER_URL", str(workdir.parent / "readme-store"))
    namespace = {"__name__": "__readme__", "model": _model(), "train_data": _Data()}
    exec(compile(hooks_block("transformers"), "README.md", "exec"), namespace)  # our docs
    (run,) = Ledger().runs()
    assert run.status == "finished"
    assert "out/checkpoint-2" in run.outputs
    assert "model" in run.outputs
