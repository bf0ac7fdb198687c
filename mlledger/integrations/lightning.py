"""``LedgerLogger``: a Lightning ``Logger`` that records the training in the ledger.

    trainer = lightning.Trainer(max_epochs=3, logger=LedgerLogger())
    trainer.fit(model, data)

Into the active run, or a run it opens when Lightning first needs it (the
checkpoint folder asks for ``version``: the run id) and closes when the fit,
validate or test call ends (``failed`` when it raises, ``interrupted`` on
Ctrl-C), on the ledger given or the default ledger.  It records:

- params: what ``log_hyperparams`` gets (``save_hyperparameters()`` of the
  module and the data module), the module's class and ``num_parameters``;
- metrics: every ``self.log(...)`` value Lightning hands it, at the global step;
- outputs: each file a ``ModelCheckpoint`` saves, the moment it is saved (kept
  when a better one replaces it later), and after a fit the final model as
  ``model``: a Lightning checkpoint of the weights and hyperparameters
  (``MyModule.load_from_checkpoint(path)`` reads it back).

Only global rank 0 records.  ``logger.experiment`` is the run.
"""

from __future__ import annotations

import os
import weakref
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from .hooks import TrainingRun, exc_now, missing_extra

try:
    import lightning
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as _e:  # pragma: no cover - the test extra installs it
    raise missing_extra("lightning", "lightning", _e) from _e

__all__ = ["LedgerLogger"]


class LedgerLogger(Logger):
    """Record a Lightning training's hyperparameters, metrics, checkpoints and final model.

    ``ledger``: a :class:`mlledger.Ledger` or a store URL for the run this logger
    opens when no run is active (default: the default ledger); ``name`` (default
    ``"lightning"``), ``message`` and ``tags`` for that run.  ``log_checkpoints`` /
    ``log_model``: store the ``ModelCheckpoint`` files / the final model.
    """

    def __init__(
        self,
        ledger: Any = None,
        *,
        name: str | None = None,
        message: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_checkpoints: bool = True,
        log_model: bool = True,
    ) -> None:
        super().__init__()
        self.training = TrainingRun(
            "LedgerLogger", ledger=ledger, name=name, message=message, tags=tags
        )
        self.log_checkpoints = log_checkpoints
        self.log_model = log_model
        self._module: weakref.ref[Any] | None = None
        self._last: Any = None  # the run of the last call, once it ended

    # -- what Lightning reads ----------------------------------------------------------
    @property
    def name(self) -> str:
        run = self.training.run
        return run.name if run is not None else (self.training.name or "lightning")

    @property
    def version(self) -> str | None:
        """The run's id (checkpoints go under it): the open run, else the last one, else a
        run opened now (rank 0 only)."""
        run = self.experiment
        return run.id if run is not None else None

    @property
    def experiment(self) -> Any:
        """The run this training records into, or the last one after the call ended (None
        on other ranks or when untracked).  Asked before any training, it opens the run."""
        if getattr(rank_zero_only, "rank", 0) > 0:
            return None
        return self.training.run or self._last or self._ensure()

    def _ensure(self) -> Any:
        if self.training.run is None:
            self._last = None
            self.training.begin(self.training.name or "lightning")
        return self.training.run

    # -- what Lightning hands it ---------------------------------------------------------
    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if self._ensure() is None:
            return
        if isinstance(params, Namespace):
            params = vars(params)
        if isinstance(params, Mapping):
            self.training.log_params(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._ensure() is not None:
            self.training.log(step, metrics)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning hands the module here at the start of each call: kept (weakly) for
        the final model, its class and size recorded as params."""
        if self._ensure() is None:
            return
        self._module = weakref.ref(model)
        params: dict[str, Any] = {
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}"
        }
        try:
            params["num_parameters"] = int(sum(p.numel() for p in model.parameters()))
        except Exception as e:
            self.training.warn("parameter count not recorded", e)
        self.training.log_params(params)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self.log_checkpoints or self._ensure() is None:
            return
        self.training.save_new(_checkpoint_paths(checkpoint_callback))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        training = self.training
        if training.run is None:
            return
        self._last = training.run
        if status == "success":
            module = self._module() if self._module is not None else None
            if self.log_model and module is not None and _fitted(module):
                training.save_model(lambda folder: _write_checkpoint(module, folder))
            training.end()
        elif status == "failed":
            training.end(exc_now() or RuntimeError("Lightning reported the training failed"))
        else:  # "finished": a cluster's signal to stop (the job is requeued)
            training.end(KeyboardInterrupt(f"Lightning stopped the training ({status})"))
        self._module = None


def _checkpoint_paths(callback: Any) -> list[str]:
    """The files a ``ModelCheckpoint`` keeps: its top-k, best and last."""
    paths = [str(p) for p in (getattr(callback, "best_k_models", None) or {})]
    for attr in ("best_model_path", "last_model_path"):
        p = getattr(callback, attr, None)
        if p:
            paths.append(str(p))
    return list(dict.fromkeys(p for p in paths if p))


def _fitted(module: Any) -> bool:
    """The call that ends is a fit (validate, test and predict leave the model as it was)."""
    try:
        return str(getattr(module.trainer.state.fn, "value", "")) == "fit"
    except Exception:
        return False


def _write_checkpoint(module: Any, folder: str) -> str:
    """The module's weights and hyperparameters as a checkpoint ``load_from_checkpoint``
    reads (written here on rank 0 alone: no collective call of the strategy)."""
    import torch

    path = os.path.join(folder, "model.ckpt")
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(getattr(module, "hparams", {}) or {}),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return path
