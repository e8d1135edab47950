"""Training step rate of the harness's trainer modes beside hand-written loops, in one process.

    python scripts/bench_step_rate.py --out results/bench/step_rate.csv
    python scripts/bench_step_rate.py --device cpu --cases mlp128 --seconds 0.5     # a CPU smoke run

For each case (MLP widths 128 and 1024: 784-w-w-10, batch 256, fp32; CNN widths 32, 64, 128: harness's
`cnn` model, 3 conv3-BN-ReLU blocks on 3×32×32 inputs, batch 512, bf16, channels_last) it times:

- `hand_eager`: a minimal eager PyTorch loop (gather a shuffled batch from GPU-resident data, forward,
  cross-entropy, backward, SGD step), written out here;
- `hand_graph`: the same step captured once in a CUDA graph and replayed (static index buffer);
- `harness_eager`, `harness_graph`: `harness.training` with trainer.mode=eager / graph (cosine LR schedule,
  loss accumulation, divergence checks every 50 steps, everything a real run does);
- `harness_ensemble` (MLP-128 with E=64, CNN-32 with E=8): trainer.mode=ensemble, E models per step.

All use SGD (lr 0.05, momentum 0.9, Nesterov, weight decay 5e-4) on 50,000 random samples with 10
classes. Each measurement runs about `--seconds` of training after an untimed warm-up; the harness's own
train_time_s (device synchronized, warm-up and evaluation excluded) is used for its modes.

Columns: steps/s (optimizer steps; for an ensemble, of all E models at once), model_steps/s (× E),
samples/s, TFLOP/s achieved (torch-counted FLOPs of one training step × steps/s × E), MFU (that / the
device's peak at the case's precision, harness/compute/peak_flops.csv), and ratios to the hand-written
loops. The CSV header carries the device, torch version and date.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_table import write_rows
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from harness.compute.hardware import peak_flops_for
from harness.compute.training import measure_train_step
from harness.data import Dataset
from harness.device import device_name
from harness.energy import EnergyMeter
from harness.models import build_model
from harness.settings import TrainerSettings
from harness.training.modes import trainer_for
from harness.training.spec import TrainingJob

N_TRAIN, N_TEST, CLASSES = 50_000, 1024, 10
# The trainer's default optimizer's arguments (conf/trainer/default.yaml), for both loops.
SGD = {k: v for k, v in TrainerSettings().optimizer.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    width: int
    input_shape: tuple[int, ...]
    batch: int
    precision: str
    channels_last: bool
    ensemble: int = 0  # E for the harness_ensemble row (0: none)

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16}[self.precision]


CASES = {
    "mlp128": Case("mlp128", "mlp", 128, (784,), 256, "fp32", False, ensemble=64),
    "mlp1024": Case("mlp1024", "mlp", 1024, (784,), 256, "fp32", False),
    "cnn32": Case("cnn32", "cnn", 32, (3, 32, 32), 512, "bf16", True, ensemble=8),
    "cnn64": Case("cnn64", "cnn", 64, (3, 32, 32), 512, "bf16", True),
    "cnn128": Case("cnn128", "cnn", 128, (3, 32, 32), 512, "bf16", True),
}


def build(case: Case, device: torch.device, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(
        case.model, case.input_shape, CLASSES, width=case.width, depth=2 if case.model == "mlp" else 3
    )
    model.to(device).train()
    if case.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def synthetic(case: Case, device: torch.device) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_TEST, *case.input_shape, generator=generator)
    y = torch.randint(0, CLASSES, (N_TRAIN + N_TEST,), generator=generator)
    return Dataset(
        name="synthetic",
        x_train=x[:N_TRAIN],
        y_train=y[:N_TRAIN],
        x_test=x[N_TRAIN:],
        y_test=y[N_TRAIN:],
        input_shape=case.input_shape,
        num_classes=CLASSES,
        n_train_full=N_TRAIN,
        source="scripts/bench_step_rate.py",
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(case: Case, device: torch.device, cache: bool = True):
    return torch.autocast(
        device.type, dtype=case.dtype, enabled=case.dtype is not torch.float32, cache_enabled=cache
    )


# ------------------------------------------------------------------------------ hand-written references


def hand_eager(case: Case, data: tuple[torch.Tensor, torch.Tensor], device, steps: int) -> float:
    """Steps/s of the plainest eager loop; 5 untimed warm-up steps."""
    x, y = data
    model = build(case, device)
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    order = torch.randperm(N_TRAIN, device=device)

    def step(i: int) -> None:
        start = (i * case.batch) % (N_TRAIN - case.batch)
        idx = order[start : start + case.batch]
        with autocast(case, device):
            loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(5):
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    return steps / (time.perf_counter() - start)


def hand_graph(case: Case, data: tuple[torch.Tensor, torch.Tensor], device, steps: int) -> float:
    """Steps/s of the same step captured in a CUDA graph, the batch indices copied into a static buffer."""
    x, y = data
    model = build(case, device)
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    order = torch.randperm(N_TRAIN, device=device)
    static_idx = order[: case.batch].clone()

    def body() -> None:
        with autocast(case, device, cache=False):
            loss = F.cross_entropy(model(x[static_idx]), y[static_idx])
        loss.backward()
        optimizer.step()

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    optimizer.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    for _ in range(5):
        graph.replay()
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        begin = (i * case.batch) % (N_TRAIN - case.batch)
        static_idx.copy_(order[begin : begin + case.batch])
        graph.replay()
    sync(device)
    return steps / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------ the harness


def trainer_config(case: Case, mode: str, steps: int, device: torch.device, ensemble: int = 1):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"trainer.mode={mode}",
                f"trainer.ensemble_size={ensemble}",
                f"trainer.device={device}",
                f"trainer.precision={case.precision}",
                f"trainer.batch_size={case.batch}",
                f"trainer.max_steps={steps}",
                "trainer.epochs=1000",
                f"trainer.eval_every_steps={steps}",
                f"trainer.channels_last={str(case.channels_last).lower()}",
                "trainer.timing_warmup_steps=5",
                *(f"trainer.optimizer.{k}={str(v).lower()}" for k, v in SGD.items()),
            ],
        )
    return cfg.trainer


def harness_rate(case: Case, dataset: Dataset, device, steps: int, mode: str, ensemble: int = 1) -> tuple:
    """(steps/s, mode that ran) of harness.training in `mode`: its own train_time_s."""
    settings = TrainerSettings.from_config(trainer_config(case, mode, steps, device, ensemble))
    seeds = list(range(ensemble)) if mode == "ensemble" else [0]
    job = TrainingJob(
        models=[build(case, device, seed) for seed in seeds],
        seeds=seeds,
        data=dataset,
        settings=settings,
        device=device,
        dtype=case.dtype,
        energy=EnergyMeter.off(),
    )
    result = trainer_for(mode)(job)[0]
    if mode == "ensemble":
        time_s = result.train_time_s * ensemble  # each member is charged 1/E of the shared time
        ran = "ensemble+graph" if result.cuda_graph else "ensemble"
    else:
        time_s = result.train_time_s
        ran = (result.mode or mode) + ("" if result.cuda_graph or mode != "graph" else " (fallback)")
    return result.steps / time_s, ran


def step_flops(case: Case, data, device) -> float:
    """torch-counted FLOPs of one training step (forward, backward, optimizer) at the case's batch."""
    x, y = data
    model = build(case, device)
    return measure_train_step(
        model, lambda p: torch.optim.SGD(p, **SGD), x[: case.batch], y[: case.batch], case.dtype
    ).step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: print only)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed training per measurement")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.cases.split(","):
        case = CASES[name]
        dataset = synthetic(case, device)
        data = (dataset.x_train.to(device), dataset.y_train.to(device))
        if case.channels_last:
            data = (data[0].contiguous(memory_format=torch.channels_last), data[1])
        flops = step_flops(case, data, device)
        peak = peak_flops_for(device, case.precision).value
        probe = hand_eager(case, data, device, 20)
        budget = lambda rate: int(min(max(rate * args.seconds, 50), 50_000))  # noqa: E731
        rates = {"hand_eager": (hand_eager(case, data, device, budget(probe)), "eager")}
        if cuda:
            graph_probe = hand_graph(case, data, device, 50)
            rates["hand_graph"] = (hand_graph(case, data, device, budget(graph_probe)), "graph")
        else:
            graph_probe = probe
        rates["harness_eager"] = harness_rate(case, dataset, device, budget(probe), "eager")
        rates["harness_graph"] = harness_rate(case, dataset, device, budget(graph_probe), "graph")
        if case.ensemble:
            e_probe = harness_rate(case, dataset, device, 30, "ensemble", case.ensemble)[0]
            rates["harness_ensemble"] = harness_rate(
                case, dataset, device, budget(e_probe), "ensemble", case.ensemble
            )
        base_eager = rates["hand_eager"][0]
        base_graph = rates.get("hand_graph", rates["hand_eager"])[0]
        for runner, (rate, ran) in rates.items():
            models = case.ensemble if runner == "harness_ensemble" else 1
            achieved = flops * rate * models
            rows.append(
                {
                    "case": case.name,
                    "runner": runner,
                    "ran_as": ran,
                    "models": models,
                    "batch": case.batch,
                    "precision": case.precision,
                    "steps_per_s": round(rate, 1),
                    "model_steps_per_s": round(rate * models, 1),
                    "samples_per_s": round(rate * models * case.batch),
                    "tflops": round(achieved / 1e12, 3),
                    "mfu": None if not peak else round(achieved / peak, 4),
                    "vs_hand_eager": round(rate * models / base_eager, 2),
                    "vs_hand_graph": round(rate * models / base_graph, 3),
                    "flops_per_model_step": f"{flops:.4g}",
                }
            )
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
        del data, dataset
        if cuda:
            torch.cuda.empty_cache()
    header = (
        f"# device: {device_name(device)}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
        f"date {datetime.now(timezone.utc):%Y-%m-%d}; peak from harness/compute/peak_flops.csv; "
        f"{args.seconds:g} s per measurement"
    )
    print(header)
    if args.out is not None:
        write_rows(args.out, rows, header.removeprefix("# "))
    return 0 if all(math.isfinite(r["steps_per_s"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
