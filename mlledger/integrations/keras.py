"""``LedgerCallback``: a Keras 3 callback that records a ``fit`` in the ledger.

    model.fit(x, y, epochs=5, callbacks=[LedgerCallback()])

Into the active run, or a run it opens when training begins and closes when it
ends (``failed`` when ``fit`` raises), on the ledger given or the default
ledger.  Any Keras backend.  It records:

- params: ``fit``'s own arguments (``batch_size``, ``epochs``,
  ``validation_split``...; ``steps`` per epoch), the optimizer's config as the
  dict param ``optimizer`` (``params.optimizer.learning_rate``), the loss, the
  model's name, class and ``num_parameters``;
- metrics: the logs of every ``log_every_n_steps``-th batch (``loss`` and the
  compiled metrics, running means over the epoch as Keras reports them) at the
  global step (the optimizer's iteration count), and at each epoch's end the
  epoch's logs (``val_*`` too), ``epoch`` and ``learning_rate``;
- outputs: the files each ``keras.callbacks.ModelCheckpoint`` of the same
  ``fit`` writes (looked for at each epoch's start and end and at train end),
  and the final model as ``model`` (``model.keras``; the weights alone,
  ``model.weights.h5``, when the model cannot be saved whole).

Only the main process (rank 0 by the launcher's ``RANK``-style variables) records.
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import os
import re
from collections.abc import Mapping
from typing import Any

from .hooks import TrainingRun, call_info, env_rank, guard, missing_extra

try:
    import keras
except ImportError as _e:  # pragma: no cover - the test extra installs it
    raise missing_extra("keras", "keras", _e) from _e

__all__ = ["LedgerCallback"]

#: ``fit`` arguments recorded as params (the data and callbacks are not params)
_FIT_PARAMS = (
    "batch_size",
    "epochs",
    "validation_split",
    "shuffle",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)
_FIELD = re.compile(r"\{[^{}]*\}")


class LedgerCallback(keras.callbacks.Callback):
    """Record a Keras ``fit``: params, metrics per step, checkpoints and the final model.

    ``ledger``: a :class:`mlledger.Ledger` or a store URL for the run this callback
    opens when no run is active (default: the default ledger); ``name`` (default: the
    model's name), ``message`` and ``tags`` for that run.  ``log_every_n_steps``:
    batches between metric logs (0: epoch ends only).  ``log_checkpoints`` /
    ``log_model``: store the ``ModelCheckpoint`` files / the final model.
    """

    #: Keras may call ``on_train_batch_end`` from a worker thread, without holding the
    #: training loop up (its async dispatch): the step comes from the batch index, and a
    #: run's ``log`` takes calls from any thread.  Each callback sets it again: on an
    #: accelerator only (see ``_on_accelerator``)
    async_safe = True

    def __init__(
        self,
        ledger: Any = None,
        *,
        name: str | None = None,
        message: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_every_n_steps: int = 1,
        log_checkpoints: bool = True,
        log_model: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(log_every_n_steps, int) or log_every_n_steps < 0:
            raise ValueError(
                f"log_every_n_steps takes a count of batches (0: epoch ends only), "
                f"not {log_every_n_steps!r}"
            )
        self.training = TrainingRun(
            "LedgerCallback", ledger=ledger, name=name, message=message, tags=tags
        )
        self.every = log_every_n_steps
        self.log_checkpoints = log_checkpoints
        self.log_model = log_model
        self.async_safe = _on_accelerator()
        self.step = 0  # the global step at the start of the current epoch
        self._checkpoints: list[Any] = []
        if not log_every_n_steps:  # Keras then keeps its fast path: no per-batch call at all
            default = keras.callbacks.Callback.on_train_batch_end.__get__(self)
            self.on_train_batch_end = default  # type: ignore[method-assign]
        guard(keras.Model, "fit", _fit_call)

    @property
    def run(self) -> Any:
        """The run this training records into (None outside training and off rank 0)."""
        return self.training.run

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if env_rank() != 0:
            return
        model = self.model
        info = call_info()
        if not isinstance(info, dict) or not any(cb is self for cb in info["callbacks"]):
            info = {"params": {}, "callbacks": []}
        self._checkpoints = [
            cb for cb in info["callbacks"] if isinstance(cb, keras.callbacks.ModelCheckpoint)
        ]
        try:
            self.step = int(model.optimizer.iterations)
        except Exception:
            self.step = 0
        params = {**info["params"], **_params(self.training, model, self.params)}
        self.training.begin(str(getattr(model, "name", None) or "keras"), params)
        self.training.mark_seen(self._checkpoint_files())  # files of an earlier fit

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        step = self.step + batch + 1
        if logs and step % self.every == 0 and self.training.run:
            self.training.log(step, logs)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._save_checkpoints()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.training.run is None:
            return
        try:  # Keras has waited for every batch call of the epoch by now
            self.step = int(self.model.optimizer.iterations)
        except Exception as e:
            self.training.warn("global step not read", e)
        values = {**(logs or {}), "epoch": epoch + 1}
        # a rate some backend cannot turn into a float is left out
        with contextlib.suppress(Exception):
            values["learning_rate"] = float(self.model.optimizer.learning_rate)
        self.training.log(self.step, values)
        self._save_checkpoints()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        training = self.training
        if training.run is None:
            return
        self._save_checkpoints()
        if self.log_model:
            model = self.model
            training.save_model(lambda folder: _write_model(model, folder))
        training.end()

    def _save_checkpoints(self) -> None:
        if not self.log_checkpoints or not self._checkpoints or self.training.run is None:
            return
        self.training.save_new(self._checkpoint_files())

    def _checkpoint_files(self) -> list[str]:
        """The files the fit's ``ModelCheckpoint`` callbacks' paths name now."""
        found: list[str] = []
        for cb in self._checkpoints:
            pattern = _FIELD.sub("*", os.fspath(getattr(cb, "filepath", "") or ""))
            if pattern:
                found += sorted(glob.glob(pattern))
        return found


def _on_accelerator() -> bool:
    """Whether this Keras backend trains on a GPU or TPU here.  There the batch-end call
    goes to Keras's worker thread (reading the logs waits for the device, which the loop
    then need not); on a CPU the logs are host values already, and a call in the loop
    costs less than a hop to that thread (measured: 0.87x the hop's fit time, torch)."""
    try:
        name = keras.config.backend()
        if name == "torch":
            import torch

            mps = getattr(torch.backends, "mps", None)
            return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))
        if name == "jax":
            import jax

            return bool(jax.default_backend() != "cpu")
        if name == "tensorflow":
            import tensorflow as tf

            return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))
        return False  # numpy, openvino: the CPU
    except Exception:  # a backend that cannot say: keep the loop free, as Keras would
        return True


def _fit_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """A ``fit`` call's callbacks and param-like arguments, when a LedgerCallback is among
    its callbacks (read by that callback at train begin)."""
    callbacks = kwargs.get("callbacks")
    if callbacks is None and len(args) > 6:
        callbacks = args[6]
    if not callbacks or not any(isinstance(cb, LedgerCallback) for cb in callbacks):
        return None
    bound = _signature().bind(*args, **kwargs)
    given = bound.arguments
    params = {k: given[k] for k in _FIT_PARAMS if k in given}
    return {"callbacks": list(callbacks), "params": params}


_SIG: list[inspect.Signature] = []


def _signature() -> inspect.Signature:
    if not _SIG:
        fit = keras.Model.fit
        _SIG.append(inspect.signature(getattr(fit, "__wrapped__", fit)))
    return _SIG[0]


def _params(training: TrainingRun, model: Any, fit: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keras's own fit params (epochs, steps), the optimizer, loss and model facts."""
    params: dict[str, Any] = {k: v for k, v in (fit or {}).items() if k in ("epochs", "steps")}
    try:
        params["optimizer"] = dict(model.optimizer.get_config())
    except Exception as e:
        training.warn("optimizer config not recorded", e)
    loss = getattr(model, "loss", None)
    if loss is not None:
        params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", repr(loss))
    params["model_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    try:
        params["num_parameters"] = int(model.count_params())
    except Exception as e:
        training.warn("parameter count not recorded", e)
    return params


def _write_model(model: Any, folder: str) -> str:
    """The final model as ``model.keras``, or its weights when it cannot be saved whole."""
    path = os.path.join(folder, "model.keras")
    try:
        model.save(path)
        return path
    except Exception:
        weights = os.path.join(folder, "model.weights.h5")
        model.save_weights(weights)
        return weights


# at import: ``model.fit(..., callbacks=[LedgerCallback()])`` looks ``fit`` up before it
# makes the callback
guard(keras.Model, "fit", _fit_call)
