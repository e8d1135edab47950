"""The shipped scaling study (scripts/study.sh): its tables, the machine it ran on, and its README.

    python -m harness.report.study machine --out machine.json --started ISO [--wall DATASET=S ...]
    python -m harness.report.study tables --runs DIR --dest DEST ...    runs.parquet, runs.csv, curves.csv
    python -m harness.report.study readme --runs DIR --dest DEST ...    README.md from the tables and fit/
    python -m harness.report.study architectures --runs DIR --dest DEST --dataset D [--command C ...]
        a few architectures at a few learning rates: tables and a README of the tuned accuracies

Every figure in the README is read from the runs table, machine.json or the fit's own tables; nothing is
typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.device import cpu_model_name
from harness.energy.carbon import J_PER_KWH
from harness.errors import HarnessError
from harness.report.formatting import interval, number
from harness.results import load, load_curves
from harness.results.collect import collect
from harness.scaling.holdout import GRID_SCALE

TABLE, CURVES, MACHINE = "runs.parquet", "curves.csv", "machine.json"
# A tuned study's second fit: each configuration's compute is its whole search's (tune_compute=sum).
SEARCH_FIT = "fit_search"
# ... and its runs at one fixed learning rate, untuned: the same grid without tuning.
FIXED_FIT = "fit_fixed_lr"
# A study folder's hand-written notes, appended to its README (what the generated tables cannot say).
NOTES = "notes.md"
# Test accuracy of MNIST-1D's four architectures in its paper (Greydanus 2020, "Scaling down deep learning",
# 4,000 train / 1,000 test), by our model names; the README sets the largest tuned configurations beside them.
PUBLISHED = {"mnist1d": {"linear_flexible": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}}
# The paper's ImageNet figure the README sets ours beside: log10(error) on log10(network operations).
PAPER_BENCHMARK, PAPER_X = "imagenet", "network_operations"


def _command_output(*command: str) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep:
            raise HarnessError(f"--{what} {value}: expected DATASET=VALUE")
        pairs[key] = rest
    return pairs


def machine_info(
    started: str,
    commit: str,
    walls: dict[str, str],
    statuses: dict[str, str],
    *,
    invocation: str | None = None,
    train_commands: dict[str, str] | None = None,
) -> dict:
    """What the study ran on (no hostname), when, for how long, how, and whether each study finished."""
    import torch

    gpu = _command_output(
        "nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"
    )
    return {
        "started_utc": started,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "invocation": invocation,
        "train_commands": train_commands or {},
        "wall_s": {k: float(v) for k, v in walls.items()},
        "train_status": {k: int(v) for k, v in statuses.items()},  # 0 done, 1 some failed, 124 out of time
        "gpu": gpu,
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
    }


def write_tables(runs_dir: Path, dest: Path) -> pd.DataFrame:
    """runs.parquet and runs.csv (run_dir relative to the runs tree) and curves.csv, into `dest`."""
    frame, parquet, csv = collect(runs_dir, dest)
    if frame.empty:
        raise HarnessError(f"no run records under {runs_dir}; train the study first")
    root = str(Path(runs_dir).resolve())
    table = pd.read_parquet(parquet)
    table["run_dir"] = [os.path.relpath(str(Path(p).resolve()), root) for p in table["run_dir"]]
    table.to_parquet(parquet, index=False)
    table.to_csv(csv, index=False)
    curves = load_curves(runs_dir)
    curves.to_csv(dest / CURVES, index=False)
    return table


def _unique(frame: pd.DataFrame, column: str) -> list:
    if column not in frame.columns:
        return []
    values = set(frame[column].dropna().tolist())
    numeric = all(isinstance(v, (int, float)) for v in values)
    return sorted(values) if numeric else sorted(values, key=str)


def _join(values) -> str:
    return ", ".join(str(v) for v in values) if len(values) else "n/a"


def _energy_lines(runs: pd.DataFrame) -> list[str]:
    total = runs["energy_total_j"].sum(min_count=1) if "energy_total_j" in runs.columns else None
    if total is None or pd.isna(total):
        return ["- **Total energy:** not measured (energy fields are empty)."]
    parts = []
    for column, label in (("energy_gpu_j", "GPU"), ("energy_cpu_j", "CPU"), ("energy_ram_j", "RAM")):
        if column in runs.columns and runs[column].notna().any():
            methods = _join(_unique(runs, column.replace("_j", "").replace("energy_", "energy_method_")))
            parts.append(f"{label} {runs[column].sum():.4g} J ({methods})")
    shared = (
        "energy_gpu_shared" in runs.columns and runs["energy_gpu_shared"].fillna(False).astype(bool).any()
    )
    gpu = "energy_gpu_j" in runs.columns and runs["energy_gpu_j"].notna().any()
    how = (
        "GPU energy is the NVML energy counter's difference over each training window; CPU and RAM come "
        if gpu
        else "No GPU was used; CPU and RAM energy come "
    )
    sharing = ""
    if gpu:
        sharing = (
            " **Some windows shared the GPU with another process.**"
            if shared
            else " No window shared the GPU with another process."
        )
    lines = [
        f"- **Total energy:** {total:.4g} J ({total / J_PER_KWH:.3g} kWh), the sum of `energy_total_j` over "
        f"{int(runs['energy_total_j'].notna().sum())} runs: the training windows only (warm-up and "
        "evaluation excluded), " + "; ".join(parts) + ".",
        f"- {how}from codecarbon (its method per component is named above: `estimate:` means a model of "
        "power, not a reading)." + sharing,
    ]
    return lines


def _poly_rows(fit_dir: Path) -> dict[tuple[str, str], dict]:
    """fits.csv's log-log rows of `fit_dir`, by (x, points); empty when there is no fit there."""
    fits_path = fit_dir / "fits.csv"
    if not fits_path.exists():
        return {}
    fits = pd.read_csv(fits_path)
    poly = fits[fits["spec"] == "poly"].to_dict("records")
    return {(r["x"], r.get("points", "all")): r for r in poly}


def _slope_k(r: dict | None) -> str:
    if r is None:
        return "n/a"
    slope = interval(r["slope"], r["slope_ci_low"], r["slope_ci_high"])
    return f"{slope}, {interval(r['k'], r['k_ci_low'], r['k_ci_high'])} (N {r['n']})"


def _comparison_lines(dest: Path, previous: Path | None) -> list[str]:
    """Each log-log fit of fit/ beside the whole search's compute (fit_search/) and an earlier study's."""
    tuned = _poly_rows(dest / "fit")
    others = [
        ("tuned, the whole search's compute", _poly_rows(dest / SEARCH_FIT)),
        ("untuned: these runs at the fixed rate only", _poly_rows(dest / FIXED_FIT)),
    ]
    if previous is not None:
        others.append((f"untuned study ({previous.name})", _poly_rows(previous / "fit")))
    others = [(title, rows) for title, rows in others if rows]
    if not tuned or not others:
        return []
    columns = ["x", "points", "tuned (the chosen run's compute)", *(title for title, _ in others)]
    lines = [
        "Slope [95% CI], k [95% CI] (N configurations) of log10(error) on log10(x):",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for key, row in tuned.items():
        cells = [key[0], key[1], _slope_k(row), *(_slope_k(rows.get(key)) for _, rows in others)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fit_notes(path: Path) -> list[str]:
    """The notes `harness fit` printed (dropped runs, tuning, skipped fits), without the dataset prefix."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if "\nnotes\n" not in text:
        return []
    block = text.split("\nnotes\n", 1)[1].split("\n\n", 1)[0]
    return [line.split(": ", 1)[1] if ": " in line else line for line in block.splitlines() if line.strip()]


def _tuned_keys(chosen: pd.DataFrame) -> list[str]:
    return [c for c in chosen.columns if c.startswith(("trainer.", "model."))]


def _tuning_lines(dest: Path, dataset: str) -> list[str]:
    """What tuning chose (fit/tuning.csv), and each model's largest configuration beside published figures."""
    path = dest / "fit" / "tuning.csv"
    if not path.exists():
        return []
    chosen = pd.read_csv(path)
    keys = _tuned_keys(chosen)
    lines = [
        f"Tuning: {int(chosen['searched'].sum())} runs searched, {len(chosen)} chosen (one per configuration "
        f"and seed, the lowest validation error over {', '.join(keys)}; `fit/tuning.csv` lists them). "
        "Chosen values per model:",
        "",
    ]
    for model, group in chosen.groupby("model", observed=True):
        counts = ", ".join(
            f"{value:g} ×{count}"
            for key in keys
            for value, count in group[key].value_counts().sort_index().items()
        )
        lines.append(f"- {model}: {counts}")
    return [*lines, "", *largest_configuration_lines(chosen, dataset)]


def largest_configuration_lines(chosen: pd.DataFrame, dataset: str) -> list[str]:
    """Each model's largest configuration (widest, most data) among `chosen` runs: its tuned values and
    validation and test accuracy (mean over seeds), beside the dataset's published accuracy where known."""
    keys = _tuned_keys(chosen)
    published = PUBLISHED.get(dataset, {})
    lines = [
        "The largest configuration of each model (widest, most data; mean over seeds), its tuned run's test "
        "accuracy" + (" beside the paper's (Greydanus 2020, 4,000 training signals):" if published else ":"),
        "",
        "| model | width | training set | chosen "
        + ", ".join(keys)
        + " | validation accuracy | test accuracy |"
        + (" published |" if published else ""),
        "| --- | --- | --- | --- | --- | --- |" + (" --- |" if published else ""),
    ]
    for model, group in chosen.groupby("model", observed=True):
        top = group
        if "model_width" in top.columns and top["model_width"].notna().any():
            top = top[top["model_width"] == top["model_width"].max()]
        top = top[top["n_train"] == top["n_train"].max()]
        width = top["model_width"].iloc[0] if "model_width" in top.columns else None
        cells = [
            str(model),
            "n/a" if width is None or pd.isna(width) else f"{int(width)}",
            f"{int(top['n_train'].iloc[0])}",
            "; ".join(f"{v:g}" for key in keys for v in sorted(top[key].unique())),
            f"{1 - top['val_error'].mean():.1%}",
            f"{1 - top['test_error'].mean():.1%}",
        ]
        if published:
            cells.append(f"{published[model]:.0%}" if model in published else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fit_lines(fit_dir: Path) -> list[str]:
    """The headline numbers of fit/: k per compute column (all points and frontier), holdout at the corner."""
    lines: list[str] = []
    fits_path = fit_dir / "fits.csv"
    if not fits_path.exists():
        return ["(no fit/ yet)"]
    fits = pd.read_csv(fits_path)
    # Every log-log row, one per benchmark too (_poly_rows keys by x and points, for comparing two fits).
    poly = fits[fits["spec"] == "poly"].to_dict("records")
    if poly:
        lines += [
            "| x | points | N | slope [95% CI] | k [95% CI] | R² |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in poly:
            lines.append(
                f"| {r['x']} | {r.get('points', 'all')} | {r['n']} | "
                f"{interval(r['slope'], r['slope_ci_low'], r['slope_ci_high'])} | "
                f"{interval(r['k'], r['k_ci_low'], r['k_ci_high'])} | {number(r['r2'], 2)} |"
            )
    holdout_path = fit_dir / "holdout.csv"
    if holdout_path.exists():
        holdout = pd.read_csv(holdout_path)
        grid = holdout[holdout["scale"] == GRID_SCALE] if "scale" in holdout.columns else holdout.iloc[:0]
        if len(grid):
            lines += [
                "",
                "Out of sample (fit without each model's largest width and largest training set, predict "
                "those configurations; relative error of the predicted test error):",
                "",
                "| fitted law | held-out points | median | worst | at the corner (largest width, all data) |",
                "| --- | --- | --- | --- | --- |",
            ]
            for model, group in grid.groupby("model", sort=False, observed=True):
                corner = group[group["corner"].fillna(False).astype(bool)]
                at_corner = ", ".join(
                    f"{r.get('architecture') or ''} {r['relative_error']:.1%}".strip()
                    for r in corner.to_dict("records")
                )
                lines.append(
                    f"| `{model}` | {len(group)} | {group['relative_error'].median():.1%} | "
                    f"{group['relative_error'].max():.1%} | {at_corner or 'n/a'} |"
                )
    return lines


def _paper_line() -> str:
    """The paper's ImageNet slope and k, computed from the shipped reference data (not typed in)."""
    from harness.scaling import analyse_reference
    from harness.settings import FitSettings

    analysis = analyse_reference(PAPER_BENCHMARK, FitSettings())
    fit = next(
        f for f in analysis.fits if f.plan is not None and f.plan.spec == "poly" and f.plan.x == PAPER_X
    )
    r = fit.row
    return (
        "For comparison, the paper's ImageNet data (shipped, `harness fit reference=imagenet`): "
        "log10(error) on log10(network operations) has slope "
        f"{interval(r['slope'], r['slope_ci_low'], r['slope_ci_high'])} (N = {r['n']}), "
        f"k = {interval(r['k'], r['k_ci_low'], r['k_ci_high'])}. That is a survey of "
        "published ImageNet models across years and architectures; ours is a controlled grid of small models "
        "on one small dataset, a different regime, so the two k's are set side by side, not equated."
    )


def readme_text(args: argparse.Namespace, runs: pd.DataFrame) -> str:
    dest = Path(args.dest)
    machine = json.loads(Path(args.machine).read_text()) if args.machine else {}
    counts = runs["status"].value_counts().to_dict() if "status" in runs.columns else {}
    commits = _unique(runs, "git_commit") or [machine.get("commit") or args.commit]
    started = _unique(runs, "started_at")
    device_names = _unique(runs, "device_name")
    wall = (machine.get("wall_s") or {}).get(args.dataset)
    wall_text = (
        f"{float(wall):.0f} s for the sweep"
        if wall not in (None, "")
        else f"{runs['wall_time_s'].sum():.0f} s, the sum of the runs' own wall times"
    )
    study = f"scripts/study.sh {args.dataset} {args.device}"
    invocation = machine.get("invocation") or study
    command = f"`{invocation}`"
    words = invocation.split()
    if "scripts/study.sh" in words and words[words.index("scripts/study.sh") + 1 :][:1] == ["gpu"]:
        command += " on the GPU machine, then `scripts/study.sh finish PACK_DIR` on this one"
    train_command = (
        (machine.get("train_commands") or {}).get(args.dataset)
        or f"harness train -m +sweep={args.preset} paths.results_dir=RUNS_DIR"
    ).strip()
    lines = [
        f"# Scaling study: {args.dataset} on {args.device}",
        "",
        f"{len(runs)} runs of the sweep preset `+sweep={args.preset}` (conf/sweep/{args.preset}.yaml: the "
        "grid, the epochs rule and why), collected into `runs.parquet` / `runs.csv` (one row per run, "
        "loadable with `harness.results.load`), learning curves in `curves.csv`, fits in `fit/` "
        "(`fit/report.md`).",
        "",
        "## How it was made",
        "",
        f"- **Command:** {command} (re-run this study alone: `{study}`); the sweep itself: "
        f"`{train_command}`.",
        f"- **Fits:** `{args.fit_command}`, re-creating `fit/` from the committed table.",
        f"- **Commit:** {_join(commits)}"
        + (
            " (the runs' checkout had uncommitted changes)"
            if "git_dirty" in runs.columns and runs["git_dirty"].fillna(False).astype(bool).any()
            else ""
        ),
        f"- **Machine:** {_join(device_names)}"
        + (f"; GPU {machine['gpu']}" if machine.get("gpu") else "")
        + (f"; CPU {machine['cpu']} ({machine['cpu_count']} cores visible)" if machine.get("cpu") else "")
        + (f"; Python {machine['python']}, torch {machine['torch']}" if machine.get("torch") else ""),
        f"- **Date:** {_join(started[:1])} to {_join(started[-1:])} (UTC, first and last run start)",
        f"- **Wall time:** {wall_text}; training time {runs['train_time_s'].sum():.0f} s in all.",
        *_energy_lines(runs),
        f"- **Runs:** {counts}; models {_join(_unique(runs, 'model'))}; widths "
        f"{_join(_unique(runs, 'model_width'))}; training sets "
        f"{_join([int(v) for v in _unique(runs, 'n_train')])}; seeds {_join(_unique(runs, 'seed'))}.",
    ]
    status = (machine.get("train_status") or {}).get(args.dataset)
    if status == 124:
        lines.append("- **The sweep reached its time limit:** runs it had not finished are missing.")
    lines += ["", "## What the fits say", "", *_fit_lines(dest / "fit"), "", _paper_line(), ""]
    notes = _fit_notes(dest / "fit.txt")
    if notes:
        lines += ["What `harness fit` noted (`fit.txt`):", "", *(f"- {note}" for note in notes), ""]
    tuning = _tuning_lines(dest, args.dataset)
    if tuning:
        lines += ["## Tuning", "", *tuning, ""]
    previous = Path(args.previous) if args.previous else None
    comparison = _comparison_lines(dest, previous)
    if comparison:
        lines += ["## Tuned beside untuned", "", *comparison, ""]
    if (dest / NOTES).exists():
        lines += [(dest / NOTES).read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


def architectures_readme(runs_dir: Path, dest: Path, dataset: str, commands: list[str]) -> str:
    """A README for a few architectures trained at a few learning rates on one dataset (no scaling fit):
    per model the run with the lowest validation error, beside the published accuracies."""
    from harness.scaling.runs import select_tuned
    from harness.settings import FitSettings

    table = write_tables(runs_dir, dest)
    completed = table[table["status"] == "completed"]
    _, tuning, _ = select_tuned(
        completed, ["trainer.optimizer.lr"], group_by=FitSettings().group_by, compute="best"
    )
    commits = _join(_unique(table, "git_commit"))
    started = _unique(table, "started_at")
    lines = [
        f"# {dataset}: the published architectures, tuned on validation",
        "",
        f"{len(table)} runs ({_join(_unique(table, 'model'))}; statuses "
        f"{table['status'].value_counts().to_dict()}), collected into `runs.parquet` / `runs.csv`, learning "
        "curves in `curves.csv`. Each model was trained at three learning rates; the run with the lowest "
        "validation error stands for it (`harness.scaling.runs.select_tuned`, as `harness fit tune=` "
        "chooses). Too few configurations for a scaling fit: this folder checks accuracy only.",
        "",
        *(f"- `{command}`" for command in commands),
        f"- Commit: {commits}; runs started {_join(started[:1])} to {_join(started[-1:])} (UTC) on "
        f"{_join(_unique(table, 'device_name'))}.",
        "",
        *largest_configuration_lines(tuning.chosen, dataset),
        "",
    ]
    notes = dest / NOTES
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.study", description=__doc__.split("\n", 1)[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    machine = sub.add_parser("machine", help="write machine.json")
    machine.add_argument("--out", type=Path, required=True)
    machine.add_argument("--started", required=True)
    machine.add_argument("--commit", default="unknown")
    machine.add_argument("--wall", action="append", help="DATASET=SECONDS")
    machine.add_argument("--status", action="append", help="DATASET=EXIT_STATUS of its sweep")
    machine.add_argument("--invocation", default=None, help="the study.sh command, as typed")
    machine.add_argument("--train-command", action="append", help="DATASET=the harness train command")
    for name in ("tables", "readme"):
        command = sub.add_parser(name)
        command.add_argument("--runs", type=Path, required=True)
        command.add_argument("--dest", type=Path, required=True)
        command.add_argument("--dataset", required=True)
        command.add_argument("--device", required=True)
        command.add_argument("--preset", required=True)
        command.add_argument("--commit", default="unknown")
        command.add_argument("--machine", default=None)
        command.add_argument("--fit-command", default="")
        command.add_argument("--previous", default=None, help="an earlier study folder to compare fits with")
    architectures = sub.add_parser("architectures", help="runs table and README of a few tuned architectures")
    architectures.add_argument("--runs", type=Path, required=True)
    architectures.add_argument("--dest", type=Path, required=True)
    architectures.add_argument("--dataset", required=True)
    architectures.add_argument("--command", action="append", default=[], help="a command that made the runs")
    args = parser.parse_args(argv)
    try:
        if args.action == "machine":
            walls, statuses = _pairs(args.wall, "wall"), _pairs(args.status, "status")
            commands = _pairs(args.train_command, "train-command")
            info = machine_info(
                args.started,
                args.commit,
                walls,
                statuses,
                invocation=args.invocation,
                train_commands=commands,
            )
            args.out.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        elif args.action == "architectures":
            args.dest.mkdir(parents=True, exist_ok=True)
            text = architectures_readme(args.runs, args.dest, args.dataset, args.command)
            (args.dest / "README.md").write_text(text, encoding="utf-8")
        elif args.action == "tables":
            if not args.runs.is_dir():
                raise HarnessError(f"--runs {args.runs} is not a directory of runs")
            args.dest.mkdir(parents=True, exist_ok=True)
            table = write_tables(args.runs, args.dest)
            print(f"{len(table)} runs -> {args.dest}/runs.parquet, runs.csv, {CURVES}", file=sys.stderr)
        else:
            runs = load(args.dest / TABLE)
            (args.dest / "README.md").write_text(readme_text(args, runs), encoding="utf-8")
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
