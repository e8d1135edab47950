"""`harness measure`: one model's compute without training it (root config conf/measure.yaml).

FLOPs and MACs per forward pass (fvcore + harness's handles), per-module breakdown, ops without a
handle, torch's own count as a cross-check (with check_torch=true), parameters, inference latency and
throughput on a device (bounded in time: latency.min_time_s, latency.max_time_s), and on a GPU the
energy per inference (NVML's energy counter over a window of back-to-back forward passes).
`measure(cfg)` is the plain function; `main` prints it as a table or as one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from harness.building import build_model_from_config, model_label
from harness.cli import run_command
from harness.compute.flops import FlopReport, count_flops, declared_batch_dim, torch_forward_flops
from harness.console import table_console
from harness.device import autocast, device_name, resolve_device, resolve_precision
from harness.energy import EnergyMeter, EnergySettings
from harness.errors import ConfigError, HarnessError, one_line
from harness.settings import ModelMeasureSettings
from harness.training.clock import Stopwatch
from harness.training.threads import apply_cpu_threads, resolve_cpu_threads


def _input_shape(settings: ModelMeasureSettings) -> tuple[int, ...]:
    shape = tuple(settings.input_shape)
    if len(shape) < 2 or not all(d > 0 for d in shape):
        raise ConfigError(
            f"input_shape={list(shape)} is not a batch-first shape of positive ints (batch_dim=<dim> "
            "puts the batch elsewhere); e.g. input_shape=[1,3,224,224]"
        )
    return shape


def _batch_dim(settings: ModelMeasureSettings, shape: tuple[int, ...]) -> int | None:
    """The declared batch dim, or None: 0, or the layout of an RNN model (count_flops decides)."""
    dim = settings.batch_dim
    if dim is not None and not 0 <= dim < len(shape):
        raise ConfigError(f"batch_dim={dim} is not a dim of input_shape={list(shape)}; e.g. batch_dim=1")
    return dim


def _with_batch(shape: tuple[int, ...], batch_dim: int, batch_size: int) -> tuple[int, ...]:
    return (*shape[:batch_dim], batch_size, *shape[batch_dim + 1 :])


def _say(message: str) -> None:
    """Progress for the person waiting: stderr, so stdout stays the table or the one JSON object."""
    print(message, file=sys.stderr, flush=True)


def module_table(model: torch.nn.Module, report: FlopReport, depth: int) -> list[dict[str, Any]]:
    """Rows for modules nested at most `depth` deep: params, MACs, FLOPs and share of the total."""
    rows = []
    for name, module in model.named_modules():
        level = 0 if name == "" else name.count(".") + 1
        if level > depth:
            continue
        macs = report.by_module.get(name, 0.0)
        rows.append(
            {
                "module": name or "(model)",
                "type": type(module).__name__,
                "params": sum(p.numel() for p in module.parameters()),
                "macs": macs,
                "flops": 2.0 * macs,
                "share": macs / report.macs if report.macs else 0.0,
            }
        )
    return rows


@torch.no_grad()
def time_inference(
    model,
    shape,
    batch_size,
    device,
    dtype,
    warmup_iters,
    min_time_s,
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, float]:
    """Seconds per forward pass of a batch (`shape` is the input's, batch included), as timeit's autorange
    does: synchronized clock; warm-up first, `warmup_iters` passes but none begun after `min_time_s` of
    warm-up (a pass that long has paid its allocations); then rounds of 1, 2, 4, ... passes until one
    lasts `min_time_s`. At least one warm-up and one timed pass. `progress` hears of each round."""
    x = torch.randn(*shape, device=device)
    watch = Stopwatch(device)
    with autocast(device, dtype):
        start = watch.now()
        warmups = 0
        while warmups < max(1, warmup_iters) and (warmups == 0 or watch.now() - start < min_time_s):
            model(x)
            warmups += 1
        progress(f"batch {batch_size}: {warmups} warm-up passes in {watch.now() - start:.1f} s")
        iterations = 1
        while True:
            start = watch.now()
            for _ in range(iterations):
                model(x)
            elapsed = watch.now() - start
            progress(f"batch {batch_size}: {iterations} timed passes in {elapsed:.1f} s")
            if elapsed >= min_time_s:
                break
            iterations *= 2
    latency = elapsed / iterations
    return {
        "batch_size": batch_size,
        "latency_s": latency,
        "throughput_samples_per_s": batch_size / latency,
        "iterations": iterations,
        "warmup_iterations": warmups,
    }


def _over_budget(rows: list[dict[str, Any]], batch_size: int, max_time_s: float | None) -> str | None:
    """Why timing `batch_size` is skipped, or None: one warm-up and one timed pass, at the best
    per-sample latency measured so far, would take longer than `max_time_s` (null: no limit)."""
    timed = [row["latency_s"] / row["batch_size"] for row in rows if row.get("latency_s")]
    if max_time_s is None or not timed:
        return None
    estimate = 2 * batch_size * min(timed)
    if estimate <= max_time_s:
        return None
    return (
        f"skipped: one warm-up and one timed pass would take ~{estimate:.0f} s at the per-sample latency "
        f"measured, over latency.max_time_s={max_time_s:g}"
    )


@torch.no_grad()
def inference_energy(
    model,
    shape,
    batch_size: int,
    device: torch.device,
    dtype,
    min_window_s: float,
    *,
    meter: EnergyMeter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """GPU energy per inference: forward passes of one batch, back to back, inside one NVML counter window
    of at least `min_window_s` (the counter refreshes about every 100 ms, so short windows are coarse).

    The figure is the whole GPU's energy over the window, static power included: what serving this model
    at full occupancy of the GPU costs. Without CUDA (or NVML) it is reported as not measured, with why.
    """
    if meter is None:
        if device.type != "cuda":
            return {"energy_method": "not_measured: needs a CUDA device (NVML)"}
        # The inference window only: no codecarbon tracker (its CPU figure needs its own long window).
        settings = EnergySettings(codecarbon=False, save_timeline=False)
        meter = EnergyMeter(settings, device, None, clock=clock)
    x = torch.randn(*shape, device=device)
    iterations = 0
    meter.start()
    with autocast(device, dtype):
        model(x)  # the first pass after an idle spell can be slower; keep it out of the window
        with meter.window():
            start = clock()
            # Host time bounds the loop; the window closes after a device sync, so it lasts at least as long.
            while clock() - start < min_window_s:
                model(x)
                iterations += 1
    fields = meter.finish()
    energy = fields["energy_gpu_j"]
    samples = iterations * batch_size
    return {
        "energy_method": fields["energy_method_gpu"],
        "energy_window_s": meter.window_s,
        "energy_iterations": iterations,
        "energy_j": energy,
        "energy_per_sample_j": None if energy is None else energy / samples,
        "energy_error_j": fields["energy_gpu_error_j"],
        "energy_power_mean_w": None if energy is None else energy / meter.window_s,
        "energy_gpu_shared": fields["energy_gpu_shared"],
    }


def measure(cfg: DictConfig, *, progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Everything `harness measure` reports, as a JSON-ready dict; `progress` hears what it is doing."""
    settings = ModelMeasureSettings.from_config(cfg)
    if settings.error is not None:  # checked before the model is built: a bad value costs nothing
        # imported here: the fits (statsmodels) are loaded only when a placement is asked for
        from harness.scaling import placement

        placement.check(settings.error, list(settings.place_on))
    result, model, device, dtype = _count(settings, progress)
    if settings.latency.enabled:
        shape, batch_dim = tuple(result["input_shape"]), result["batch_dim"]
        result["latency"] = _latency(model, settings, shape, batch_dim, device, dtype, progress)
    if settings.error is not None:
        progress(
            f"placing {result['model']} at error {settings.error} against {', '.join(settings.place_on)}"
        )
        result["placement"] = placement.place(
            result["flops_per_sample"], settings.error, list(settings.place_on)
        )
    return result


def _count(settings: ModelMeasureSettings, progress: Callable[[str], None]):
    """(the result's counting part, the model, device, dtype): the model built and counted."""
    shape = _input_shape(settings)
    declared = _batch_dim(settings, shape)
    # train's thread policy (trainer.cpu_threads=auto): torch's default, a thread per core, spins against
    # other work on a shared machine; mobilenet_v3_small took 1.7 s a pass beside it on 2 busy cores.
    threads, threads_policy = resolve_cpu_threads(settings.trainer.cpu_threads)
    apply_cpu_threads(threads)
    device = resolve_device(settings.trainer.device)
    dtype = resolve_precision(settings.trainer.precision, device)
    at = declared or 0  # registered models are built for one sample: the shape without its batch dim
    label = model_label(settings.model, qualified=True)
    model = build_model_from_config(settings.model, shape[:at] + shape[at + 1 :], settings.num_classes)
    model = model.to(device).eval()
    x = torch.randn(*shape, device=device)
    progress(f"counting FLOPs of {label} on input {list(shape)}")
    try:
        report = count_flops(model, x, strict=settings.strict, batch_dim=declared)
    except RuntimeError as exc:
        raise ConfigError(
            f"input_shape={list(shape)} does not fit {label} ({one_line(exc)}); "
            "pass the shape the model expects"
        ) from None
    torch_flops = None
    if settings.check_torch:  # a second forward pass: opt-in, as the zoo's 80 models agree with it
        progress("counting again with torch.utils.flop_counter (math attention)")
        torch_flops = torch_forward_flops(model, x, math=True)
    result = {
        "model": label,
        "input_shape": list(shape),
        "batch_dim": declared_batch_dim(model, declared),
        "batch_size": report.batch_size,
        "macs": report.macs,
        "flops": report.flops,
        "macs_per_sample": report.macs_per_sample,
        "flops_per_sample": report.flops_per_sample,
        "params": sum(p.numel() for p in model.parameters()),
        "unsupported": report.unsupported,
        "free": report.free,
        "torch_flops": torch_flops,
        "torch_ratio": torch_flops / report.flops if torch_flops is not None and report.flops else None,
        "by_operator": report.by_operator,
        "macs_by_category": report.by_category,
        "modules": module_table(model, report, settings.table_depth),
        "device": str(device),
        "device_name": device_name(device),
        "precision": settings.trainer.precision,
        "cpu_threads": threads,
        "cpu_threads_policy": threads_policy,
        "latency": [],
    }
    return result, model, device, dtype


def _latency(model, settings: ModelMeasureSettings, shape, batch_dim, device, dtype, progress) -> list[dict]:
    """One row per latency batch size: timed (and, on a GPU, energy per inference), or skipped with why."""
    latency, rows = settings.latency, []
    window = settings.energy.min_window_s if settings.energy.enabled else None
    for b in latency.batch_sizes:
        batched = _with_batch(shape, batch_dim, b)
        skipped = _over_budget(rows, b, latency.max_time_s)
        if skipped is not None:
            progress(f"batch {b}: {skipped}")
            rows.append({"batch_size": b, "latency_s": None, "skipped": skipped})
            continue
        progress(f"timing batch {b} on {device_name(device)} (input {list(batched)})")
        row = time_inference(
            model, batched, b, device, dtype, latency.warmup_iters, latency.min_time_s, progress=progress
        )
        if window is not None:
            row |= inference_energy(model, batched, b, device, dtype, window)
        rows.append(row)
    return rows


def _si(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {unit}"
    return f"{value:.0f}"


def print_table(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = table_console()
    table = Table(title=f"{result['model']}  input {result['input_shape']}", title_justify="left")
    for column in ("module", "type", "params", "MACs", "FLOPs", "share"):
        table.add_column(column, justify="left" if column in ("module", "type") else "right")
    for row in result["modules"]:
        table.add_row(
            row["module"],
            row["type"],
            _si(row["params"]),
            _si(row["macs"]),
            _si(row["flops"]),
            f"{row['share']:.1%}",
        )
    console.print(table)
    ratio = result["torch_ratio"]
    torch_line = (
        "torch.utils.flop_counter: not run (check_torch=true runs it: a second forward pass)"
        if result["torch_flops"] is None
        else f"torch.utils.flop_counter: {_si(result['torch_flops'])}FLOP "
        f"(ratio {'n/a' if ratio is None else f'{ratio:.4f}'}; it counts matmul/conv/attention only)"
    )
    console.print(
        f"total: {_si(result['flops'])}FLOP ({_si(result['macs'])}MAC) for batch {result['batch_size']}, "
        f"{_si(result['flops_per_sample'])}FLOP per sample; params {_si(result['params'])}\n"
        f"{torch_line}\n"
        f"MACs by kind: {', '.join(f'{k} {_si(v)}' for k, v in result['macs_by_category'].items())}\n"
        f"unsupported ops: {result['unsupported'] or 'none'}"
    )
    for row in result["latency"]:
        if row.get("skipped"):
            console.print(f"latency on {result['device_name']}, batch {row['batch_size']}: {row['skipped']}")
            continue
        console.print(
            f"latency on {result['device_name']} ({result['precision']}), batch {row['batch_size']}: "
            f"{row['latency_s'] * 1e3:.3f} ms, {row['throughput_samples_per_s']:.1f} samples/s"
        )
        if row.get("energy_per_sample_j") is not None:
            console.print(
                f"  energy: {row['energy_per_sample_j'] * 1e3:.4g} mJ per sample over "
                f"{row['energy_window_s']:.2f} s ({row['energy_power_mean_w']:.0f} W mean, "
                f"{row['energy_method']}, ±{row['energy_error_j'] or 0:.2g} J"
                f"{', GPU shared with other processes' if row['energy_gpu_shared'] else ''})"
            )
        elif "energy_method" in row:
            console.print(f"  energy: {row['energy_method']}")
    for row in result.get("placement", ()):
        console.print(
            f"against {row['reference']} (slope {row['slope']:.4f}, N {row['n']}): at error {row['error']:g} "
            f"the trend spends {_si(row['trend_flops'])}FLOP per forward pass "
            f"[{_si(row['trend_flops_ci_low'])}, {_si(row['trend_flops_ci_high'])}], "
            f"{row['efficiency']:.3g}× this model's [{row['efficiency_ci_low']:.3g}, "
            f"{row['efficiency_ci_high']:.3g}] (> 1: more efficient than the field)"
        )


@hydra.main(version_base="1.3", config_path="pkg://harness.conf", config_name="measure")
def hydra_main(cfg: DictConfig) -> None:
    try:  # measure() reads the settings before any work: a bad output= is refused there
        result = measure(cfg, progress=_say)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if cfg.output == "json":
        print(json.dumps(result))
    else:
        print_table(result)


def main() -> None:
    """`python -m harness.measure`: the same command as `harness measure` (checks before Hydra runs)."""
    run_command("measure", sys.argv[1:])


if __name__ == "__main__":
    main()
