"""How long a user waits: `harness` start-up and the quick jobs, at two git revisions, side by side.

    python scripts/bench_startup.py --base 3718753 --rounds 5 --out results/bench/startup_cpu.csv

Each revision is installed into its own folder (as scripts/bench_revisions.py does) and every command is a
fresh process, rounds alternating the order of the revisions, timed by wall clock from process start to
exit. The commands and the goals they are held to (2 idle CPU cores):

    help       harness train --help                        <= 3 s
    error      harness train trainer.epochs=abc             <= 3 s  (a preflight error: one line, exit 2)
    train      harness train  (the default run, end to end)  <= 6 s
    quickstart scripts/quickstart.sh's sweep (12 runs)       (no goal; the README quotes it)

Times depend on the machine and on what else runs on it: the load average is printed first, and a busy
machine is named in the output and the CSV rather than hidden.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_revisions import check_revisions, install, revision_parser
from bench_table import write_rows

GOALS_S = {"help": 3.0, "error": 3.0, "train": 6.0, "quickstart": None}
COMMANDS = {
    "help": (["train", "--help"], 0),
    "error": (["train", "trainer.epochs=abc"], 2),
    "train": (["train"], 0),
    "quickstart": (["train", "-m", "+sweep=quickstart"], 0),
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def time_command(site: Path, args: list[str], expected_exit: int, cwd: Path) -> float:
    """Wall seconds of one `harness ARGS` process with `site` first on the path; raises on a wrong exit."""
    env = {**os.environ, "PYTHONPATH": str(site), "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "harness.cli", *args, f"paths.results_dir={cwd / 'runs'}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != expected_exit:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"`harness {' '.join(args)}` exited {done.returncode}: {tail[0]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = revision_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every command at both revisions (5)")
    parser.add_argument("--commands", default="help,error,train,quickstart", help="which, comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the medians (default: print only)")
    args = parser.parse_args(argv)
    check_revisions(parser, args)
    names = args.commands.split(",")
    unknown = [n for n in names if n not in COMMANDS]
    if unknown or args.rounds < 1:
        parser.error(
            f"--commands: unknown {unknown}; choose from {', '.join(COMMANDS)}"
            if unknown
            else f"--rounds must be at least 1, got {args.rounds}"
        )

    load = os.getloadavg()[0]
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    print(
        f"machine: {machine}; load average {load:.2f} before the first command"
        f"{' (BUSY: times are not those of an idle machine)' if load > 0.5 else ''}",
        flush=True,
    )
    times: dict[tuple[str, str], list[float]] = {}
    commits = {}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        root = Path(tmp)
        sites = {}
        for label, revision in (("base", args.base), ("head", args.head)):
            commits[label], sites[label] = install(revision, root)
            print(f"{label}: {revision} = {commits[label][:12]}", flush=True)
        for round_ in range(args.rounds):
            order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
            for name in names:
                for label in order:
                    cwd = root / f"cwd-{label}-{name}-{round_}"
                    cwd.mkdir()
                    command, expected_exit = COMMANDS[name]
                    try:
                        seconds = time_command(sites[label], command, expected_exit, cwd)
                    except RuntimeError as exc:
                        print(f"{label} ({commits[label][:12]}): {exc}", file=sys.stderr)
                        return 2
                    times.setdefault((name, label), []).append(seconds)
                    print(f"round {round_} {name:<10} {label} {seconds:7.2f} s", flush=True)

    rows = []
    print(f"\n{'command':<11}{'base s':>9}{'head s':>9}{'head/base':>11}{'goal s':>8}  met")
    for name in names:
        base, head = (statistics.median(times[(name, label)]) for label in ("base", "head"))
        goal = GOALS_S[name]
        met = "-" if goal is None else ("yes" if head <= goal else "NO")
        print(f"{name:<11}{base:9.2f}{head:9.2f}{head / base:11.2f}{goal or float('nan'):8.1f}  {met}")
        rows.append(
            {
                "command": " ".join(["harness", *COMMANDS[name][0]]),
                "base_median_s": round(base, 3),
                "head_median_s": round(head, 3),
                "goal_s": goal,
                "rounds": args.rounds,
                "base_commit": commits["base"][:12],
                "head_commit": commits["head"][:12],
                "machine": machine,
                "load_before": round(load, 2),
            }
        )
    if args.out is not None:
        write_rows(
            args.out, rows, f"harness start-up, {args.rounds} rounds; {machine}; load before {load:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
