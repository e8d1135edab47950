"""A Hugging Face `TrainerCallback` that measures `Trainer.train` and writes the run record `harness train`
writes.

    from harness.integrations.transformers import HarnessCallback
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[HarnessCallback(results_dir="results/runs", metric="eval_loss")])
    trainer.train()

The Trainer's callbacks are not told about batches, so the callback watches the model's forward calls with
a forward pre-hook (removed when training ends): the first training call's keyword inputs (less `labels`)
are the example input, on which the FLOPs of one forward pass are counted before the clock starts; every
training call is a step of its samples and, for token ids of shape (batch, sequence), its tokens
(tokens_seen, padding included; flops_forward_per_token is flops_forward / the sequence length counted on).
Evaluation calls (the model in eval mode) pause the training time and energy windows until the next
training call. After each evaluation `metric` is logged from the Trainer's metrics; at the end the
Trainer's own estimate `state.total_flos` goes into the record's metrics as `trainer_total_flos`
(README, "Measure your own training loop", compares it with network_operations).

The Trainer has no hook for an exception inside `train()`. An unfinished run is written as `failed` by a
new `train()` on the same callback, or, when the exception ends the process, as it exits (an `atexit` handler
registered for the time of `train()`, which reads the exception Python kept in `sys.last_value`): a crash
leaves a failed record naming it, not nothing. A process killed outright (SIGKILL, os._exit) writes none.
"""

from __future__ import annotations

import atexit
import inspect
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from harness.integrations.batches import batch_size
from harness.results.schema import RunRecord
from harness.tracking import Run, check_options, token_ids

TOTAL_FLOS_METRIC = "trainer_total_flos"


class UnfinishedTraining(RuntimeError):
    """A Trainer.train() that ended without on_train_end (it raised)."""


def _tokens(inputs: Mapping[str, Any]) -> int | None:
    """Tokens of a language model's call: the elements of its token ids (integer, batch × sequence)."""
    ids = token_ids(inputs.get("input_ids"))
    return None if ids is None else ids.numel()


class HarnessCallback(TrainerCallback):
    """Measure `Trainer.train` (see the module). `metric`: the Trainer's metric recorded after each
    evaluation (eval_loss, or eval_<name> of compute_metrics; any name other than test_error, test_loss and
    train_loss goes into the record's `metrics`); `options` are harness.track's (name, config, data, n_train,
    seed, precision, strict_flops, energy, peak_flops), name defaulting to the model's class, precision to the
    TrainingArguments' (bf16, fp16, else fp32) and seed to theirs."""

    def __init__(
        self, results_dir: str | Path = "results/runs", *, metric: str | None = "eval_loss", **options: Any
    ):
        check_options(options, "HarnessCallback")
        self.results_dir, self.metric, self.options = results_dir, metric, options
        self.run: Run | None = None
        self._hook: torch.utils.hooks.RemovableHandle | None = None

    @property
    def record(self) -> RunRecord | None:
        """The record of the last train() (written when it ended)."""
        return None if self.run is None else self.run.record

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        self._close(UnfinishedTraining("Trainer.train ended without on_train_end: it raised"))
        defaults = {
            "name": type(model).__name__,
            "seed": args.seed,
            "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        }
        options = {**defaults, **{k: v for k, v in self.options.items() if v is not None}}
        self.run = Run(model, results_dir=self.results_dir, trainer_mode="hf_trainer", **options)
        self._hook = model.register_forward_pre_hook(self._before_forward, with_kwargs=True)
        atexit.register(self._end_at_exit)

    def _before_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        run = self.run
        if run is None:
            return
        if not module.training:  # evaluation (or the FLOP count's own eval-mode pass)
            run.pause()
            return
        # The Trainer calls model(**inputs); a first positional input is the token ids.
        inputs = {**({"input_ids": args[0]} if args else {}), **kwargs}
        if not run.begun:
            run.begin(_example(module, inputs))
        else:
            run.resume()
        run.step(samples=batch_size(inputs), tokens=_tokens(inputs))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.run is None or not self.run.begun or self.metric is None or not metrics:
            return
        if self.metric not in metrics:
            warnings.warn(
                f"HarnessCallback(metric={self.metric!r}): the Trainer reported no such metric "
                f"({', '.join(sorted(metrics))}); pass one of them",
                stacklevel=2,
            )
            return
        self.run.log(**{self.metric: metrics[self.metric]})

    def on_train_end(self, args, state, control, **kwargs):
        if self.run is not None and self.run.begun:
            self.run.log(**{TOTAL_FLOS_METRIC: float(state.total_flos)})
        self._close(None)

    def _end_at_exit(self) -> None:
        """The process exits inside train(): an uncaught exception (Python keeps it in sys.last_value
        after printing it) or an exit from a callback or the user's code."""
        exc = getattr(sys, "last_value", None)
        if exc is None or not _raised_in_trainer(exc):  # IPython keeps every failed cell's exception there
            exc = UnfinishedTraining("the process exited inside Trainer.train")
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        atexit.unregister(self._end_at_exit)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.run is not None:
            self.run.end(exc)


def _raised_in_trainer(exc: BaseException) -> bool:
    """Whether `exc` went through the Trainer's own code (transformers.trainer) on its way up."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "transformers.trainer":
            return True
        tb = tb.tb_next
    return False


def _example(model: torch.nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """The keyword inputs to count FLOPs on: the call's tensors less the labels (the loss is not the
    model's forward pass), without a key-value cache where the forward can make one (a traced forward
    cannot return it)."""
    example: dict[str, Any] = {
        key: value for key, value in inputs.items() if isinstance(value, torch.Tensor) and key != "labels"
    }
    if "use_cache" in inspect.signature(model.forward).parameters:
        example["use_cache"] = False
    return example
