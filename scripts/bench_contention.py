"""What a busy machine does to a measurement, with and without the thread policy, and whether records say so.

    python scripts/bench_contention.py --rounds 3 --out results/bench/contention_cpu.csv -- trainer.epochs=20

The same `harness train` (the overrides after `--`; default: the default run) in four conditions, each a
fresh process, rounds alternating the order:

    alone  / auto      the thread policy (trainer.cpu_threads=auto) on a machine left alone
    alone  / default   torch's default: one thread per core (trainer.cpu_threads=<cores>)
    loaded / auto      the policy beside --load CPU-bound processes that this script starts and stops
    loaded / default   torch's default beside the same load

The load is bounded: each spinning process stops by itself after --load-cap-s seconds and is killed when its
run ends; a run starts only once every spinner has said it is spinning. Prints the median training time of
each condition, the slowdown loaded/alone for each policy, and what each record said (contended, others'
load, threads); writes every run to a CSV with --out. Times are only comparable within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_table import write_rows

SPIN = """
import sys, time
print("spinning", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""
CONDITIONS = (("alone", "auto"), ("alone", "default"), ("loaded", "auto"), ("loaded", "default"))


def start_load(processes: int, cap_s: float) -> list[subprocess.Popen]:
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN, str(cap_s)], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for spinner in spinners:
        if spinner.stdout.readline().strip() != "spinning":  # handshake: the load is on before the run
            raise RuntimeError("a load process did not start")
    return spinners


def stop_load(spinners: list[subprocess.Popen]) -> None:
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


def train_once(overrides: list[str], threads: str, results: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the policy decides, not the env
    env["CUDA_VISIBLE_DEVICES"] = ""
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "train",
        *overrides,
        f"trainer.cpu_threads={threads}",
        "energy.codecarbon=false",
        f"paths.results_dir={results}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    records = sorted(results.rglob("run.json"))
    if done.returncode != 0 or len(records) != 1:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"training failed (exit {done.returncode}): {tail[0]}")
    return json.loads(records[0].read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four conditions (3)")
    parser.add_argument("--load", type=int, default=1, help="CPU-bound processes beside the loaded runs (1)")
    parser.add_argument("--load-cap-s", type=float, default=300.0, help="the most a load process runs (300)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every run (default: print only)")
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != "--"]
    if args.rounds < 1 or args.load < 1:
        parser.error(f"--rounds and --load must be at least 1, got {args.rounds} and {args.load}")
    cores = os.cpu_count() or 1
    print(f"load average before: {os.getloadavg()[0]:.2f}; {cores} cores; load: {args.load} process(es)")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_contention_") as tmp:
        for round_ in range(args.rounds):
            order = CONDITIONS if round_ % 2 == 0 else CONDITIONS[::-1]
            for machine, policy in order:
                threads = "auto" if policy == "auto" else str(cores)
                spinners = start_load(args.load, args.load_cap_s) if machine == "loaded" else []
                try:
                    record = train_once(overrides, threads, Path(tmp) / f"{round_}-{machine}-{policy}")
                except RuntimeError as exc:
                    print(f"{machine}/{policy}: {exc}", file=sys.stderr)
                    return 2
                finally:
                    stop_load(spinners)
                row = {
                    "round": round_,
                    "machine": machine,
                    "policy": policy,
                    "cpu_threads": record["cpu_threads"],
                    "train_time_s": record["train_time_s"],
                    "cpu_utilization": record["cpu_utilization"],
                    "machine_load_others": record["machine_load_others"],
                    "contended": record["contended"],
                    "contended_reason": record["contended_reason"],
                    "test_error": record["test_error"],
                    "device_name": record["device_name"],
                }
                rows.append(row)
                print(
                    f"round {round_} {machine:<6} {policy:<7} threads {row['cpu_threads']}  "
                    f"train {row['train_time_s']:7.2f} s  others {row['machine_load_others']:.2f} cores  "
                    f"contended {row['contended']}",
                    flush=True,
                )

    def median(machine: str, policy: str) -> float:
        return statistics.median(
            r["train_time_s"] for r in rows if (r["machine"], r["policy"]) == (machine, policy)
        )

    print()
    for policy in ("auto", "default"):
        alone, loaded = median("alone", policy), median("loaded", policy)
        ratio = loaded / alone
        print(f"{policy:<8} alone {alone:7.2f} s  loaded {loaded:7.2f} s  slowdown {ratio:.2f}x")
    flagged = {
        (machine, policy): sum(
            bool(r["contended"]) for r in rows if (r["machine"], r["policy"]) == (machine, policy)
        )
        for machine, policy in CONDITIONS
    }
    for (machine, policy), count in flagged.items():
        print(f"flagged contended: {machine}/{policy} {count} of {args.rounds}")
    if args.out is not None:
        write_rows(
            args.out, rows, f"overrides: {' '.join(overrides)}; load: {args.load} process(es); {cores} cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
