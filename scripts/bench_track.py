"""What `harness.track` costs a training loop: the same plain PyTorch loop with and without it, side by side.

    python scripts/bench_track.py --rounds 5 --steps 2000 --out results/bench/track_cpu.csv
    python scripts/bench_track.py --device cuda --width 1024 --steps 20000 --out results/bench/track_<gpu>.csv

One process, one model: an MLP 784-w-w-10 trained with SGD on random samples already on the device (batch
--batch). Each round runs both conditions, in alternating order, from the same weights:

    plain   the loop alone
    track   the loop inside `harness.track(...)`, calling run.step(samples=...) every step, with the default
            energy settings (codecarbon's tracker on the CPU and RAM; NVML counter windows on a GPU)
    bare    (with --conditions plain,track,bare) the same with energy measurement off: what run.step and
            the clock cost, without the meter's background threads

Each condition's time is this script's own clock around the steps (device synchronized at both ends), so the
one-off work around the block (FLOP count, the meter's start, the record) is left out and reported apart
(setup_s, finish_s); beside it, this process's CPU time over the same steps. Prints, per condition, the
median over rounds of the round's track/plain ratio of steps per wall second and per CPU second; the issue
asks for at least 0.98 (exit status 1 when the wall-time ratio is below --min-ratio). Beside every round: the
cores other processes kept busy (/proc/stat). On a shared machine the wall-time ratio swings with the
others' load (rounds from 0.5 to 2.5 were seen on 2 cores at load 6); the CPU-time ratio hardly does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from bench_table import write_rows

import harness
from harness.settings import EnergySettings
from harness.training.threads import others_busy_cores, sample_machine


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_model(width: int, device: torch.device) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(784, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    ).to(device)


def steps(model, optimizer, x, y, batch: int, count: int, run=None) -> None:
    """`count` SGD steps over (x, y) in order; with `run`, each step is reported to it."""
    n = len(x)
    for i in range(count):
        start = (i * batch) % (n - batch + 1)
        xb, yb = x[start : start + batch], y[start : start + batch]
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if run is not None:
            run.step(samples=batch)


def one(condition: str, args, initial, x, y, results: Path, device: torch.device) -> dict:
    """Train `args.steps` steps from `initial` weights under `condition`; the row for the CSV."""
    torch.manual_seed(0)
    model = make_model(args.width, device)
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    steps(model, optimizer, x, y, args.batch, args.warmup)  # allocations and kernels' first calls
    before = sample_machine()
    setup_s = finish_s = 0.0
    if condition == "plain":
        synchronize(device)
        t0, cpu0 = time.perf_counter(), time.process_time()
        steps(model, optimizer, x, y, args.batch, args.steps)
        synchronize(device)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    else:
        t_setup = time.perf_counter()
        energy = EnergySettings(enabled=False) if condition == "bare" else None
        track = harness.track(
            model, example_input=x[:1], results_dir=results, name=f"bench_w{args.width}", energy=energy
        )
        with track as run:
            synchronize(device)
            t0, cpu0 = time.perf_counter(), time.process_time()
            setup_s = t0 - t_setup
            steps(model, optimizer, x, y, args.batch, args.steps, run)
            synchronize(device)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            t_finish = time.perf_counter()
        finish_s = time.perf_counter() - t_finish
        assert run.record is not None and run.record.samples_seen == args.steps * args.batch
    return {
        "condition": condition,
        "steps": args.steps,
        "seconds": elapsed,
        "steps_per_s": args.steps / elapsed,
        "cpu_s": cpu,
        "steps_per_cpu_s": args.steps / cpu,
        "setup_s": setup_s,
        "finish_s": finish_s,
        "others_busy_cores": others_busy_cores(before, sample_machine()),
    }


def _rate(rows: list[dict], round_: int, condition: str, key: str) -> float:
    return next(r[key] for r in rows if r["round"] == round_ and r["condition"] == condition)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per condition and round")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps before each condition")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both conditions)")
    parser.add_argument("--conditions", default="plain,track", help="plain,track or plain,track,bare")
    parser.add_argument("--min-ratio", type=float, default=0.98)
    parser.add_argument("--out", type=Path, default=None, help="CSV of every round")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    conditions = tuple(args.conditions.split(","))
    if conditions[0] != "plain" or not set(conditions) <= {"plain", "track", "bare"}:
        parser.error(f"--conditions={args.conditions}: plain first, then track and/or bare")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8192, 784, generator=generator).to(device)
    y = torch.randint(0, 10, (8192,), generator=generator).to(device)
    torch.manual_seed(0)
    initial = {k: v.clone() for k, v in make_model(args.width, device).state_dict().items()}
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for index in range(args.rounds):
            order = conditions if index % 2 == 0 else conditions[::-1]
            for condition in order:
                row = {"round": index, **one(condition, args, initial, x, y, Path(results), device)}
                rows.append(row)
                print(
                    f"round {index} {condition:5s}: {row['steps_per_s']:9.1f} steps/s "
                    f"(others kept {row['others_busy_cores'] or 0:.2f} cores busy)",
                    flush=True,
                )
    median = {c: statistics.median(r["steps_per_s"] for r in rows if r["condition"] == c) for c in conditions}
    load = statistics.median(r["others_busy_cores"] or 0.0 for r in rows)
    print(f"others' load {load:.2f} cores (median over runs); median steps/s: {median}")
    ratios = {}
    for condition in conditions[1:]:
        # Each round's own condition/plain: both ran within seconds of each other, so a drift of the
        # machine's load between rounds cancels; the median over rounds is the figure. Per CPU second too:
        # this process's CPU time (all its threads, the meter's included) hardly depends on what other
        # processes do, so on a shared machine it shows an overhead that wall time buries in noise.
        for key, label in (("steps_per_s", "wall"), ("steps_per_cpu_s", "cpu")):
            paired = [
                _rate(rows, i, condition, key) / _rate(rows, i, "plain", key) for i in range(args.rounds)
            ]
            ratios[f"{condition}_{label}"] = statistics.median(paired)
            print(
                f"{condition}/plain ({label} time) per round {', '.join(f'{p:.3f}' for p in paired)}: "
                f"median {ratios[f'{condition}_{label}']:.4f} (target >= {args.min_ratio})"
            )
    ratio = ratios.get("track_wall", min(ratios.values()))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if args.out is not None:
        comment = (
            f"bench_track.py on {name}, torch {torch.__version__}, {args.threads} thread(s), "
            f"MLP 784-{args.width}-{args.width}-10 batch {args.batch}, {args.steps} steps x {args.rounds} "
            f"rounds, {datetime.now(timezone.utc):%Y-%m-%d}; median per-round ratio to plain: "
            f"{', '.join(f'{c} {r:.4f}' for c, r in ratios.items())}; others' load {load:.2f} cores"
        )
        write_rows(args.out, rows, comment)
    sys.exit(0 if ratio >= args.min_ratio else 1)


if __name__ == "__main__":
    main()
