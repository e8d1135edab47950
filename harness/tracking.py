"""`harness.track`: measure a training loop of your own and write the run record `harness train` writes.

    with harness.track(model, example_input=x0, results_dir="results/runs", name="mynet",
                       config={"width": 64, "n_train": 5000}) as run:
        for epoch in range(epochs):
            for x, y in loader:
                ...                              # the user's step
                run.step(samples=len(x))         # samples (and, for a language model, tokens=) trained on
            with run.paused():                   # evaluation: outside the training time and energy windows
                err = evaluate(model)
            run.log(test_error=err)              # the last value of each metric goes into the record

On entry, before anything is timed, the FLOPs of one forward pass are counted on `example_input` with the
counter and strict policy of `harness measure`; then the energy meter starts (NVML counter windows on a GPU,
codecarbon for CPU and RAM) and the clock runs. Training FLOPs and the paper's network operations follow
from the samples reported (flops_forward × fp_bp_ratio × samples seen, the samples seen being epochs ×
n_train). On exit the record is finished by harness.recording, the builder `harness train` uses, and written
atomically: `completed`, `failed` on an exception in the block (re-raised), `interrupted` on Ctrl-C, SIGTERM,
SIGHUP or SIGUSR1 (re-raised as KeyboardInterrupt).

`run.step` only adds to Python counters: it never synchronizes the device or makes a tensor.
The Lightning and Hugging Face callbacks (harness.integrations) drive the same `Run` from their hooks.
"""

from __future__ import annotations

import inspect
import math
import numbers
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast

import torch

from harness.compute.accounting import ForwardCompute
from harness.compute.flops import count_flops, torch_forward_flops
from harness.compute.hardware import PeakFlops, peak_flops_for
from harness.energy import EnergyMeter
from harness.errors import ConfigError, one_line
from harness.interrupts import interrupt_on_signals
from harness.recording import Measured, finish_record, new_record
from harness.results import RunRecord, write_record
from harness.results.schema import EnergyFields
from harness.settings import PRECISIONS, EnergySettings, MeasureSettings
from harness.training.clock import Stopwatch
from harness.training.spec import TrainResult
from harness.training.threads import MachineSample, sample_machine

# Metrics with a column of their own: the record's results (its own float fields, not a part's), less what
# the run was asked for or derives; any other logged metric goes into the record's `metrics`.
RESULT_METRICS = tuple(
    name
    for name, hint in RunRecord.__annotations__.items()
    if hint == "float | None" and name not in ("target_error", "time_to_target_s", "best_test_error")
)


def tokens_per_sample(example_input: Any) -> int | None:
    """The sequence length of a language model's input: an integer (token id) tensor of shape (batch,
    sequence), given alone, first, or as input_ids; None for any other input."""
    if isinstance(example_input, Mapping):
        ids = token_ids(example_input.get("input_ids"))
    elif type(example_input) is tuple:
        ids = token_ids(example_input[0]) if example_input else None
    else:
        ids = token_ids(example_input)
    return None if ids is None else int(ids.shape[1])


def token_ids(value: Any) -> torch.Tensor | None:
    """`value` when it is a language model's token ids (an integer tensor, batch × sequence), else None."""
    if isinstance(value, torch.Tensor) and value.ndim == 2 and not value.is_floating_point():
        return value
    return None


def count_forward(model: torch.nn.Module, example_input: Any, *, strict: bool = True) -> ForwardCompute:
    """FLOPs of one forward pass per sample, counted as `harness measure` counts them (fvcore with harness's
    handles; in strict mode an op without a handle is an error), and torch's count as a cross-check."""
    try:
        report = count_flops(model, example_input, strict=strict)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"example_input does not fit {type(model).__name__} ({one_line(exc)}); pass what its forward "
            "takes: a tensor, a tuple of positional inputs or a dict of keyword inputs"
        ) from None
    return ForwardCompute(
        macs_forward=report.macs_per_sample,
        flops_forward=report.flops_per_sample,
        flops_forward_torch=torch_forward_flops(model, example_input) / report.batch_size,
        step=None,  # the loop's loss and optimizer are the user's: no training step to count
        tokens_per_sample=tokens_per_sample(example_input),
    )


def _device_of(model: torch.nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\") or name in (".", ".."):
        raise ConfigError(f"name={name!r} is not a run name; give a short name without slashes, e.g. 'mynet'")
    return name.strip()


def _checked_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping) or not all(isinstance(key, str) for key in config):
        raise ConfigError(
            f"config={config!r} is not a dict of named settings; pass e.g. {{'width': 64, 'n_train': 5000}}"
        )
    return dict(config)


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()  # a sync: log is called outside the timed steps
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"run.log({name}={value!r}): a metric is a number; pass a float, e.g. {name}=0.12")
    return float(value)


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name}={value!r} is not a positive whole number; pass e.g. {name}=5000 or None")
    return int(value)


class Run:
    """One measured run of a user's loop: `begin` (count, then start the clock and the energy meter),
    `step` per training step, `pause`/`resume` (or `paused()`) around evaluation, `log` metrics, `end`
    (finish and write the record). `harness.track` is its `with` form."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        results_dir: str | Path = "results/runs",
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        data: str | None = None,
        n_train: int | None = None,
        seed: int | None = None,
        precision: str = "fp32",
        strict_flops: bool = True,
        fp_bp_ratio: float = MeasureSettings.fp_bp_ratio,
        energy: EnergySettings | None = None,
        peak_flops: float | None = None,
        trainer_mode: str = "track",
        example_input: Any = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(
                f"model is a {type(model).__name__}, not a torch.nn.Module; pass the model trained"
            )
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
        # Tested as an object: typeshed's float is no numbers.Real, so mypy would take this isinstance as
        # always false, the raise as certain and the rest of __init__ as unreachable (left unchecked).
        if not (
            isinstance(cast(object, fp_bp_ratio), numbers.Real)
            and math.isfinite(fp_bp_ratio)
            and fp_bp_ratio > 0
        ):
            raise ConfigError(f"fp_bp_ratio={fp_bp_ratio!r} must be a positive number; the paper's is 3")
        self.model = model
        self.results_dir = Path(results_dir)
        if self.results_dir.exists() and not self.results_dir.is_dir():
            raise ConfigError(f"results_dir={results_dir} is a file; give a directory for the run records")
        self.name = _checked_name(name or type(model).__name__)
        self.config = _checked_config(config)
        # The training-set size: given, else the config's n_train (what a sweep over data sizes varies).
        self.n_train = _positive_int(
            "n_train", n_train if n_train is not None else self.config.get("n_train")
        )
        self.data, self.seed, self.precision, self.strict = data, seed, precision, strict_flops
        self.fp_bp_ratio, self.peak_override, self.trainer_mode = float(fp_bp_ratio), peak_flops, trainer_mode
        self.energy_settings = energy if energy is not None else EnergySettings()
        self.metrics: dict[str, float] = {}
        self.best_test_error: float | None = None
        self.record: RunRecord | None = None  # set by begin(); finished and written by end()
        self.run_dir: Path | None = None
        self.steps = self.samples = self.tokens = 0
        self._begun = self._ended = False
        self._wall_start = 0.0
        self._counted: ForwardCompute | None = None
        self._device = torch.device("cpu")  # the model's, read by begin()
        self._peak: PeakFlops | None = None
        self._watch: Stopwatch | None = None
        self._meter = EnergyMeter.off()
        self._machine_before: MachineSample | None = None
        self._exits = ExitStack()
        self._example_input = example_input  # counted on by begin() in the `with` form

    # ------------------------------------------------------------------------------ the loop's own calls

    def step(self, samples: int, tokens: int | None = None) -> None:
        """One training step on `samples` samples (and `tokens` tokens, for a language model). Only counters:
        no device synchronization, no tensor."""
        self.steps += 1
        self.samples += samples
        if tokens is not None:
            self.tokens += tokens

    def pause(self) -> None:
        """Stop the training clock and close the energy window (evaluation, checkpoints): a no-op while
        paused or before `begin`."""
        if self._watch is None or not self._watch.running("train"):
            return
        self._watch.stop("train")
        self._meter.end()
        self._watch.start("eval")

    def resume(self) -> None:
        """Restart the training clock and reopen the energy window after `pause`."""
        if self._watch is None or self._ended or self._watch.running("train"):
            return
        self._watch.stop("eval")
        self._meter.begin()
        self._watch.start("train")

    @property
    def paused_now(self) -> bool:
        return self._watch is not None and not self._watch.running("train")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Keep the block (evaluation) out of the training time and energy windows (it is eval_time_s)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def log(self, **metrics: Any) -> None:
        """Record metrics (numbers; the last value of each is kept). A name in RESULT_METRICS (test_error,
        test_loss, train_loss) fills that record column (best_test_error is the lowest test_error logged);
        any other goes into the record's `metrics`."""
        for name, value in metrics.items():
            number = _number(name, value)
            self.metrics[name] = number
            if name == "test_error" and math.isfinite(number):
                best = self.best_test_error
                self.best_test_error = number if best is None else min(best, number)

    # --------------------------------------------------------------------------------------- lifecycle

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self, example_input: Any = None) -> None:
        """Count the FLOPs of one forward pass on `example_input` (None: not counted), then start the energy
        meter and the clock. Bad input raises a HarnessError here, before anything is written."""
        if self._begun:
            return
        self._wall_start = time.perf_counter()
        device = _device_of(self.model)
        if example_input is not None:
            self._counted = count_forward(self.model, example_input, strict=self.strict)
        self._peak = peak_flops_for(device, self.precision, self.peak_override)
        threads = (torch.get_num_threads(), "the caller's: torch.get_num_threads()")
        self.record = new_record(
            self.config,
            device=device,
            precision=self.precision,
            threads=threads,
            seed=self.seed,
            model=self.name,
            model_width=_int_or_none(self.config.get("width")),
            model_depth=_int_or_none(self.config.get("depth")),
            params=sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            data=self.data,
            n_train=self.n_train,
            epochs=_float_or_none(self.config.get("epochs")),
            trainer_mode=self.trainer_mode,
        )
        started = datetime.now(timezone.utc)
        self.run_dir = self.results_dir / f"{started:%Y-%m-%d}" / f"{self.record.run_id}_{self.name}"
        self.run_dir.mkdir(parents=True, exist_ok=False)
        self._device = device
        try:
            self._meter = EnergyMeter(self.energy_settings, device, self.run_dir)
            self._meter.wait_ready()  # codecarbon's set-up ends before anything is timed
            self._meter.start()
        except BaseException:  # nothing was measured: leave no empty run directory behind
            self._meter.finish()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        self._begun = True
        self._machine_before = sample_machine()
        self._watch = Stopwatch(device)
        self._meter.begin()
        self._watch.start("train")

    def end(self, exc: BaseException | None = None) -> RunRecord | None:
        """Stop the clock and the meter, finish the record and write it (once): `completed` without `exc`,
        `interrupted` for a KeyboardInterrupt, `failed` otherwise. None when the run never began."""
        if not self._begun or self._ended or self.record is None or self.run_dir is None:
            return None
        self._ended = True
        assert self._watch is not None and self._machine_before is not None and self._peak is not None
        self._watch.stop("train")
        self._watch.stop("eval")
        self._meter.end()
        machine = (self._machine_before, sample_machine())
        energy = EnergyFields(**self._meter.finish())
        status, error = "completed", None
        if isinstance(exc, KeyboardInterrupt):
            status, error = "interrupted", f"interrupted ({exc or 'SIGINT'}) at step {self.steps}"
        elif exc is not None:
            status, error = "failed", f"{type(exc).__name__}: {one_line(exc)}"
        result = TrainResult(
            status=status,
            error=error,
            steps=self.steps,
            samples_seen=self.samples,
            tokens_seen=self.tokens or None,
            train_time_s=self._watch.total("train"),
            train_cpu_s=self._watch.cpu_total("train"),
            eval_time_s=self._watch.total("eval"),
            warmup_time_s=0.0,  # the loop's first steps (compilation included) are timed as training
        )
        measured = Measured(
            counted=self._counted,
            peak=self._peak,
            energy=energy,
            machine=machine,
            threads=torch.get_num_threads(),
            fp_bp_ratio=self.fp_bp_ratio,
            energy_settings=self.energy_settings,
            device=self._device,
        )
        record = finish_record(self.record, result, measured)
        for name in RESULT_METRICS:
            setattr(record, name, self.metrics.get(name))
        record.best_test_error = self.best_test_error
        record.metrics = {k: v for k, v in self.metrics.items() if k not in RESULT_METRICS}
        record.wall_time_s = time.perf_counter() - self._wall_start
        write_record(self.run_dir, record)
        return record

    # ------------------------------------------------------------------------------------ `with` form

    def __enter__(self) -> Run:
        # Signals become a KeyboardInterrupt inside the block (main thread only), so a killed job still
        # leaves an `interrupted` record.
        self._exits.enter_context(interrupt_on_signals())
        try:
            self.begin(self._example_input)
        except BaseException:
            self._meter.finish()
            self._exits.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        try:
            self.end(exc)
        finally:
            self._exits.close()
        return False  # an exception in the block goes on to the caller


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


# What a caller may pass on to Run besides the model: harness.track's and the callbacks' options.
RUN_OPTIONS = tuple(
    name for name in inspect.signature(Run.__init__).parameters if name not in ("self", "model")
)


def check_options(options: Mapping[str, Any], owner: str) -> None:
    """A misspelt option is refused when the caller is made (not after its first training batch)."""
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{owner} has no option {', '.join(unknown)}; the options are {', '.join(RUN_OPTIONS)}"
        )


def track(model: torch.nn.Module, **options: Any) -> Run:
    """Measure the training loop in the `with` block (see the module); `options` are Run's:
    `example_input` what the model's forward takes (a tensor, a tuple, or a dict of keyword inputs; None:
    FLOPs not counted), `results_dir`, `name`, `config` (what sweeps vary and fits group by; its n_train,
    width, depth and epochs also fill those columns), `data` (the dataset's name), `n_train`, `seed`,
    `precision` (what the loop trains in: the peak FLOP/s of the hardware burden), `strict_flops`,
    `fp_bp_ratio`, `energy` (harness.settings.EnergySettings; default NVML on a GPU and codecarbon) and
    `peak_flops` (an override, FLOP/s)."""
    return Run(model, **options)
