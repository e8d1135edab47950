"""How long a user waits: `harness` start-up and the quick jobs, at two git revisions, side by side.

    python scripts/bench_startup.py --base 3718753 --rounds 5 --out results/bench/startup_cpu.csv

Each revision is installed into its own folder (as scripts/bench_revisions.py does) and every command is a
fresh process, rounds alternating the order of the revisions, timed by wall clock from process start to
exit. The commands and the goals they are held to (2 idle CPU cores):

    help       harness train --help                        <= 3 s
    error      harness train trainer.epochs=abc             <= 3 s  (a preflight error: one line, exit 2)
    train      harness train  (the default run, end to end)  <= 6 s
    quickstart scripts/quickstart.sh's sweep (12 runs)       (no goal; the README quotes it)

Times depend on the machine and on what else runs on it: the load average is printed first, and every
command's line says how many cores other processes kept busy while it ran (the machine's busy time from
/proc/stat less the command's own CPU time, over its wall time); a busy machine is named in the output and
the CSV rather than hidden. The revisions are installed with this interpreter's pip and setuptools, which
must be able to build the project (pyproject.toml's build-system: setuptools >= 77).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_revisions import check_revisions, install, revision_parser
from bench_table import write_rows

GOALS_S = {"help": 3.0, "error": 3.0, "train": 6.0, "quickstart": None}
BUSY_CORES = 0.25  # other processes' load beside a command above which its time is not an idle machine's
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


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all but idle and iowait), from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(site: Path, args: list[str], expected_exit: int, cwd: Path) -> tuple[float, float | None]:
    """(wall seconds, cores other processes kept busy meanwhile) of one `harness ARGS` process with `site`
    first on the path; raises on a wrong exit."""
    env = {**os.environ, "PYTHONPATH": str(site), "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "harness.cli", *args, f"paths.results_dir={cwd / 'runs'}"]
    busy0, own0 = machine_busy_s(), children_cpu_s()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    busy1, own1 = machine_busy_s(), children_cpu_s()
    if done.returncode != expected_exit:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"`harness {' '.join(args)}` exited {done.returncode}: {tail[0]}")
    others = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds
    return seconds, others


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


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
    others: dict[tuple[str, str], list[float | None]] = {}
    commits = {}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        root = Path(tmp)
        sites = {}
        for label, revision in (("base", args.base), ("head", args.head)):
            try:
                commits[label], sites[label] = install(revision, root)
            except subprocess.CalledProcessError as exc:
                lines = (exc.stderr or b"").decode(errors="replace").splitlines()
                errors = [x.strip() for x in lines if "error" in x and "exited-with-error" not in x]
                problem = errors[0] if errors else "pip failed"
                print(
                    f"could not install {revision} with {sys.executable}'s pip ({problem}); run this script "
                    "with a python whose setuptools builds the project (>= 77)",
                    file=sys.stderr,
                )
                return 2
            print(f"{label}: {revision} = {commits[label][:12]}", flush=True)
        for round_ in range(args.rounds):
            order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
            for name in names:
                for label in order:
                    cwd = root / f"cwd-{label}-{name}-{round_}"
                    cwd.mkdir()
                    command, expected_exit = COMMANDS[name]
                    try:
                        seconds, beside = time_command(sites[label], command, expected_exit, cwd)
                    except RuntimeError as exc:
                        print(f"{label} ({commits[label][:12]}): {exc}", file=sys.stderr)
                        return 2
                    times.setdefault((name, label), []).append(seconds)
                    others.setdefault((name, label), []).append(beside)
                    load_note = "" if beside is None else f"  (others kept {beside:.2f} cores busy)"
                    print(f"round {round_} {name:<10} {label} {seconds:7.2f} s{load_note}", flush=True)

    rows = []
    print(f"\n{'command':<11}{'base s':>9}{'head s':>9}{'head/base':>11}{'goal s':>8}  met  others' cores")
    busy_seen = False
    for name in names:
        base, head = (statistics.median(times[(name, label)]) for label in ("base", "head"))
        beside = _median(others[(name, "base")] + others[(name, "head")])
        busy_seen = busy_seen or (beside is not None and beside > BUSY_CORES)
        goal = GOALS_S[name]
        met = "-" if goal is None else ("yes" if head <= goal else "NO")
        print(
            f"{name:<11}{base:9.2f}{head:9.2f}{head / base:11.2f}{goal or float('nan'):8.1f}  {met:<4} "
            + ("n/a" if beside is None else f"{beside:.2f}")
        )
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
                "others_busy_cores_median": None if beside is None else round(beside, 2),
            }
        )
    if busy_seen:
        print(
            f"BUSY: other processes kept over {BUSY_CORES} cores busy beside a command (median): "
            "these are not an idle machine's times; compare head/base, measured side by side"
        )
    if args.out is not None:
        write_rows(
            args.out, rows, f"harness start-up, {args.rounds} rounds; {machine}; load before {load:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
