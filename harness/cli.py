"""The `harness` console script: one command, one subcommand per job, each a Hydra app of its own.

Start-up matters (every one-line error and `--help` pays it): this module and the checks it runs before a
command's own module is imported touch neither torch nor pandas. `--help`, `--cfg`, `--info` are answered from
the config tree alone, and bad overrides are refused by `harness.preflight`, both before the heavy import.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
from dataclasses import dataclass

from harness.conf import CONFIG_MODULE
from harness.interrupts import interrupt_on_signals

USAGE = """usage: harness <command> [hydra overrides...]

commands:
  train     train one model and record its measurements (root config conf/train.yaml);
            `-m` sweeps, e.g. harness train -m model.width=8,16 seed=0,1
  measure   count a model's FLOPs per forward pass, cross-check them, time its inference
            (root config conf/measure.yaml), e.g. harness measure model=resnet output=json
  fit       the paper's scaling regressions on its own data or on our runs, with extrapolation and a
            report (root config conf/fit.yaml), e.g. harness fit reference=all out=fits/paper
  collect   write runs.parquet and runs.csv for every run under a directory, e.g.
            harness collect results/runs

Run `harness <command> --help` for the command's configuration."""


# Hydra's flags that only show something (help, the composed config, info, shell completion): no job runs.
SHOW_ONLY_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion")
# Hydra refuses these beside --multirun (a ValueError traceback): a one-line error says so first.
ONE_JOB_FLAGS = ("-c", "--cfg", "-i", "--info", "-sc", "--shell-completion")
MULTIRUN_FLAGS = ("-m", "--multirun")


@dataclass(frozen=True)
class Command:
    module: str  # imported only once the command line has passed its checks
    config_name: str | None = None  # the Hydra root config; None: a plain argparse command (`main(argv)`)
    results_dir_key: str | None = None  # checked for writability before anything runs


COMMANDS = {
    "train": Command("harness.train", "train", "paths.results_dir"),
    "measure": Command("harness.measure", "measure"),
    "fit": Command("harness.fit", "fit"),
    "collect": Command("harness.collect"),
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0)
    if not args or args[0] not in COMMANDS:
        problem = f"unknown command '{args[0]}'" if args else "no command given"
        print(f"harness: {problem}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    run_command(args[0], args[1:])


def run_command(name: str, args: list[str]) -> None:
    """Run one command with its arguments (`harness NAME ARGS` and `python -m harness.NAME ARGS` alike).

    A signal at any moment ends it with one line and exit 128 + its number (harness.interrupts); the
    commands handle the ones that come while they work, this the ones before (imports, checks)."""
    # At exit, CPython's last garbage collection walks every object torch and the rest have made: about
    # a second of a short run, after its work is written. Frozen at exit, they are left to the OS; objects
    # are still released by reference counting, and atexit handlers (log flushing) still run. What is lost:
    # the finalizers (__del__) of objects caught in reference cycles; our writes are closed files and
    # atomic renames, done before exit. Registered once per process, however many commands it runs.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    with interrupt_on_signals() as interruption:
        try:
            _run_command(name, args)
        except KeyboardInterrupt as exc:
            print(
                f"error: interrupted ({exc or 'SIGINT'}) before harness {name} started; nothing was written",
                file=sys.stderr,
            )
            sys.exit(interruption.exit_code)


def _run_command(name: str, args: list[str]) -> None:
    command = COMMANDS[name]
    module = command.module
    if command.config_name is None:
        importlib.import_module(module).main(args)
        return
    # Hydra reads sys.argv itself: hand it the subcommand's arguments, named like the subcommand.
    sys.argv = [f"harness {name}", *args]
    if any(arg in SHOW_ONLY_FLAGS for arg in args):
        shown = [arg for arg in args if arg in ONE_JOB_FLAGS]
        if shown and any(arg in MULTIRUN_FLAGS for arg in args):
            from harness.errors import exit_with_error

            exit_with_error(
                f"{shown[0]} shows one job's configuration and cannot be combined with -m/--multirun; "
                "drop -m and give each swept key one value"
            )
        show_config(command.config_name)
        return
    from harness.preflight import preflight

    # What preflight adds: the name of an unnamed model or dataset of one's own (its target's last component,
    # as its record says), and the deletion of arguments a swapped optimizer does not take.
    sys.argv += preflight(command.config_name, args, results_dir_key=command.results_dir_key)
    from harness.composition import register_sweeper

    register_sweeper()  # `harness train -m` sweeps with it (conf/hydra/sweeper/harness.yaml)
    command_module = importlib.import_module(module)
    # What is imported by now (torch, Hydra, the command) lives as long as the process. Frozen for the
    # command, the garbage collector's full passes no longer walk it: each would take about 0.1 s, one every
    # few jobs of a sweep, wherever it falls (in a timed training segment too).
    gc.freeze()
    try:
        command_module.hydra_main()
    finally:
        gc.unfreeze()


def show_config(config_name: str) -> None:
    """Let Hydra answer --help/--cfg/--info from the config tree, without importing the command's module."""
    import hydra

    def never_runs(cfg) -> None:
        raise AssertionError("Hydra runs no job for a show-only flag")

    app = hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name)
    app(never_runs)()


if __name__ == "__main__":
    main()
