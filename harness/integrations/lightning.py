"""A Lightning callback that measures `Trainer.fit` and writes the run record `harness train` writes.

    from harness.integrations.lightning import HarnessCallback
    trainer = lightning.Trainer(max_epochs=3, callbacks=[HarnessCallback(results_dir="results/runs",
                                                                         metric="val_error")])
    trainer.fit(module, train_loader, val_loader)

The first training batch is the example input (its first tensor, or `example_input=`): the FLOPs of one
forward pass of the LightningModule are counted on it before the clock starts. Every training batch is one
step of its samples. Validation and the sanity check are kept out of the training time and energy windows;
after each validation the callback logs `metric` from `trainer.callback_metrics` (the module's `self.log`).
`config` defaults to the module's hyperparameters (`save_hyperparameters()`). An exception in `fit` leaves
a `failed` record (a KeyboardInterrupt an `interrupted` one); Lightning re-raises it as usual.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from harness.integrations.batches import batch_size, first_tensor, precision_name
from harness.results.schema import RunRecord
from harness.tracking import Run, check_options


class HarnessCallback(pl.Callback):
    """Measure `Trainer.fit` (see the module). `metric`: the logged value recorded after each validation
    (test_error, test_loss and train_loss fill their own columns, any other name goes into `metrics`);
    `example_input`: what to count FLOPs on instead of the first batch's first tensor; `options` are
    harness.track's (name, config, data, n_train, seed, precision, strict_flops, energy, peak_flops), name
    defaulting to the module's class, config to its hparams, precision to the Trainer's."""

    def __init__(
        self,
        results_dir: str | Path = "results/runs",
        *,
        metric: str | None = "val_error",
        example_input: Any = None,
        **options: Any,
    ):
        check_options(options, "HarnessCallback")
        self.results_dir, self.metric, self.example_input, self.options = (
            results_dir,
            metric,
            example_input,
            options,
        )
        self.run: Run | None = None

    @property
    def record(self) -> RunRecord | None:
        """The record of the last fit (written when it ended)."""
        return None if self.run is None else self.run.record

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        defaults = {
            "name": type(pl_module).__name__,
            "config": dict(pl_module.hparams),
            "precision": precision_name(trainer.precision),
        }
        options = {**defaults, **{k: v for k, v in self.options.items() if v is not None}}
        self.run = Run(pl_module, results_dir=self.results_dir, trainer_mode="lightning", **options)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        run = self.run
        if run is None:
            return
        if not run.begun:
            example = self.example_input if self.example_input is not None else first_tensor(batch)
            run.begin(example)
        else:
            run.resume()  # after a validation: training time again

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.run is not None:
            self.run.step(samples=batch_size(batch))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is not None:
            self.run.pause()  # also the sanity check's: before the first batch there is nothing to pause

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is None or not self.run.begun or self.metric is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "none"
            warnings.warn(
                f"HarnessCallback(metric={self.metric!r}): the module logged no such metric (logged: "
                f"{logged}); log it with self.log in validation_step or pass metric=<a logged name>",
                stacklevel=2,
            )
            return
        self.run.log(**{self.metric: value})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is not None:
            self.run.end(None)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run is not None:
            self.run.end(exception)
