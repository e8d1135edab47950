"""What measuring energy costs: the same training with energy.enabled=false and =true, alternating.

    python scripts/bench_overhead.py --pairs 3 trainer.epochs=50 model.width=256

Each pair runs off/on in alternating order (off,on / on,off / ...) so a slow drift of the machine (clocks,
temperature, other load) hits both conditions alike. Throughput is samples_seen / train_time_s, the
training windows only, which is where the meter's per-window work (device sync, two NVML counter reads)
lands. codecarbon's background thread and the power sampler run during training too, so their CPU cost is
inside the measurement. Prints the median throughput of each condition and on/off; the issue asks for an
on/off ratio of at least 0.99 (overhead under 1%). Exit status 1 when --min-ratio is not met.

Extra arguments are Hydra overrides of the train config (conf/train.yaml). For a stable GPU figure use a
training window of at least ~10 s per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from harness.train import run

REPORTED = ("energy_gpu_j", "energy_method_gpu", "energy_gpu_error_j", "energy_cpu_j", "energy_method_cpu")


def _config(overrides: list[str], enabled: bool, results_dir: Path):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                *overrides,
                f"energy.enabled={str(enabled).lower()}",
                f"paths.results_dir={results_dir}",
                "resume=false",
            ],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="off/on pairs to run (default 3)")
    parser.add_argument("--min-ratio", type=float, default=0.99, help="on/off throughput ratio to pass")
    args, overrides = parser.parse_known_args(argv)

    throughput: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        root = Path(tmp)
        for pair in range(args.pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)
            for enabled in order:
                run_dir = root / f"pair{pair}_{'on' if enabled else 'off'}"
                record = run(_config(overrides, enabled, root / "runs"), run_dir)
                if record.status != "completed" or not record.train_time_s:
                    print(f"run {run_dir.name} did not complete: {record.error}", file=sys.stderr)
                    return 2
                rate = record.samples_seen / record.train_time_s
                throughput[enabled].append(rate)
                extra = ""
                if enabled:
                    extra = "  " + ", ".join(f"{k}={getattr(record, k, None)}" for k in REPORTED)
                print(
                    f"pair {pair} energy={'on ' if enabled else 'off'} {rate:12.1f} samples/s "
                    f"train {record.train_time_s:7.2f} s{extra}"
                )
    GlobalHydra.instance().clear()

    off, on = statistics.median(throughput[False]), statistics.median(throughput[True])
    ratio = on / off
    print(f"median throughput: off {off:.1f}, on {on:.1f} samples/s; on/off = {ratio:.4f}")
    passed = ratio >= args.min_ratio
    verdict = "PASS" if passed else "FAIL"
    print(f"{verdict}: overhead {100 * (1 - ratio):.2f}% (limit {100 * (1 - args.min_ratio):.2f}%)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
