"""``LedgerCallback``: a Hugging Face ``Trainer`` callback that records the training.

    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[LedgerCallback()])
    trainer.train()

Into the active run, or a run it opens when training begins and closes when it
ends (``failed`` when ``trainer.train()`` raises), on the ledger given or the
default ledger.  It records:

- params: every ``TrainingArguments`` field (``params.learning_rate``), the
  model's config as the dict param ``model`` (``params.model.hidden_size``),
  ``model_class`` and ``num_parameters``;
- metrics: whatever the Trainer logs (``loss``, ``grad_norm``,
  ``learning_rate``, ``epoch``, ``eval_*``, the closing ``train_*``) at the
  global step;
- outputs: each ``checkpoint-N`` folder the moment the Trainer saves it (kept
  even when ``save_total_limit`` deletes it later) and the final model as
  ``model`` (``save_pretrained``: config and safetensors, with the tokenizer or
  processor when the Trainer has one).

Only the main process (world rank 0) records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .hooks import TrainingRun, guard, missing_extra

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as _e:  # pragma: no cover - the test extra installs it
    raise missing_extra("transformers", "transformers", _e) from _e

__all__ = ["LedgerCallback"]

#: the Trainer's checkpoint folder prefix (``checkpoint-500``)
_PREFIX = "checkpoint"


class LedgerCallback(TrainerCallback):
    """Record a Hugging Face ``Trainer``'s params, metrics, checkpoints and final model.

    ``ledger``: a :class:`mlledger.Ledger` or a store URL for the run this callback
    opens when no run is active (default: the default ledger); ``name``, ``message``
    and ``tags`` for that run (the name defaults to the model's class name).
    ``log_checkpoints`` / ``log_model``: store the checkpoint folders / the final model.
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
        self.training = TrainingRun(
            "LedgerCallback", ledger=ledger, name=name, message=message, tags=tags
        )
        self.log_checkpoints = log_checkpoints
        self.log_model = log_model
        guard(transformers.Trainer, "train")

    @property
    def run(self) -> Any:
        """The run this training records into (None outside training and off rank 0)."""
        return self.training.run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        model = kwargs.get("model")
        self.training.begin(_name(model), _params(self.training, args, model))

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs:
            self.training.log(int(state.global_step), logs)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.log_checkpoints or self.training.run is None:
            return
        path = os.path.join(args.output_dir, f"{_PREFIX}-{state.global_step}")
        if os.path.isdir(path):
            self.training.save(path)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        training = self.training
        if training.run is None:
            return
        model = kwargs.get("model")
        if self.log_model and model is not None:
            processor = kwargs.get("processing_class")
            if processor is None:  # releases before processing_class
                processor = kwargs.get("tokenizer")
            training.save_model(lambda folder: _write_model(model, processor, folder))
        training.end()


def _name(model: Any) -> str:
    return type(model).__name__ if model is not None else "transformers.Trainer"


def _params(training: TrainingRun, args: Any, model: Any) -> dict[str, Any]:
    """The Trainer's arguments, then the model's config, class and size."""
    params: dict[str, Any] = {}
    try:
        params.update(args.to_dict())
    except Exception as e:
        training.warn("training arguments not recorded", e)
    if model is None:
        return params
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        try:  # as config.json has it: JSON keys (id2label's int keys become text)
            params["model"] = json.loads(config.to_json_string(use_diff=False))
        except Exception as e:
            training.warn("model config not recorded", e)
    params["model_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    try:
        params["num_parameters"] = int(sum(p.numel() for p in model.parameters()))
    except Exception as e:
        training.warn("parameter count not recorded", e)
    return params


def _write_model(model: Any, processor: Any, folder: str) -> str:
    """Save the final model (and its tokenizer or processor) into ``folder``."""
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(folder)
        if processor is not None and hasattr(processor, "save_pretrained"):
            processor.save_pretrained(folder)
        return folder
    import torch

    torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    return folder


# at import, as well as when a callback is made (a Trainer subclass made later is covered:
# the wrapper sits on Trainer itself)
guard(transformers.Trainer, "train")
