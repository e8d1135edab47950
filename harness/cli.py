"""The `harness` console script: one command, one subcommand per job, each a Hydra app of its own."""

from __future__ import annotations

import importlib
import sys

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


# Each command is a module with a `main`; importing lazily keeps `harness --help` fast.
COMMANDS = {
    "train": "harness.train",
    "measure": "harness.measure",
    "fit": "harness.fit",
    "collect": "harness.collect",
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
    command, rest = args[0], args[1:]
    # Hydra reads sys.argv itself: hand it the subcommand's arguments, named like the subcommand.
    sys.argv = [f"harness {command}", *rest]
    importlib.import_module(COMMANDS[command]).main()


if __name__ == "__main__":
    main()
