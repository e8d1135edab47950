"""Our own runs as regression data: read a results directory or table, filter, average seeds, find a frontier.

Everything a user can get wrong here (an unknown or empty column, a filter that leaves nothing) is a
one-line ConfigError; rows that are dropped along the way are counted, never silently lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.results import load as load_records
from harness.results.store import TABLE_SUFFIXES

# The columns of a run record that `x=` may name, with their unit (for tables and plots): the compute
# columns, and n_train for data scaling (the theory experiment's data exponent, error ∝ n^slope).
COMPUTE_COLUMNS = MappingProxyType(
    {
        "network_operations": "FLOP",
        "flops_forward": "FLOP",
        "hardware_burden": "FLOP",
        "energy_total_j": "J",
        "flops_train_measured": "FLOP",
        "n_train": "samples",
    }
)
# Of those, the ones that measure a whole training run's FLOPs, to which the paper's USD and CO2 rates apply.
TRAINING_FLOP_COLUMNS = ("network_operations", "hardware_burden", "flops_train_measured")
# Of those, the ones read off a clock: a contended run's value measures the machine's other work too.
TIME_BASED_COLUMNS = ("hardware_burden", "energy_total_j")
# The whole-run costs that a hyperparameter search pays once per run searched (tune_compute=sum sums them
# all, so that ratios between them, such as joules per FLOP, stay those of the runs); per-sample FLOPs and
# the training-set size are the same for every run of a search, not spent by it.
SEARCH_COST_COLUMNS = (
    *TRAINING_FLOP_COLUMNS,
    "energy_total_j",
    "train_time_s",
    "emissions_kg",
    "cost_usd_energy",
)
# What tuning selects on: the validation error, never the test error it then reports.
TUNE_ON = "val_error"
TUNE_COMPUTE = ("best", "sum")


def read_runs(path: str | Path) -> pd.DataFrame:
    """One row per run from a results directory (run.json files), a .parquet or a .csv table of runs."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"results={path} does not exist; pass a results directory or a .parquet/.csv file")
    if not path.is_dir() and path.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"results={path} is neither a directory nor a .parquet or .csv file")
    frame = load_records(path)
    if frame.empty:
        raise ConfigError(f"results={path} holds no runs")
    return frame


class AllContended(ConfigError):
    """A time-based x left with no runs: every one was contended (its clock measured other work too)."""


@dataclass
class PreparedRuns:
    """Runs ready to regress: `points` (one row per configuration or per run), and what was dropped why."""

    points: pd.DataFrame
    everything: pd.DataFrame  # before the frontier (column on_frontier marks it), to plot dominated points
    runs: pd.DataFrame  # one row per run after the filters, before seeds are averaged
    dropped: dict[str, int] = field(default_factory=dict)
    tuning: Tuning | None = None  # tune=...: which runs were chosen, out of how many
    mixed: tuple[str, ...] = ()  # config keys that vary within one configuration and seed (averaged over)


@dataclass(frozen=True)
class Tuning:
    """A search over `keys` resolved per configuration and seed: the run with the lowest validation error
    stands for its configuration; `chosen` lists those runs (with `searched`, the size of each search)."""

    keys: tuple[str, ...]
    compute: str  # best: the chosen run's compute | sum: the whole search's
    searched: int  # runs searched in all
    chosen: pd.DataFrame

    def note(self) -> str:
        counted = "the chosen run's own" if self.compute == "best" else "the sum over its whole search"
        return (
            f"tuned over {', '.join(self.keys)} on {TUNE_ON} (never the test error): of {self.searched} "
            f"runs searched, {len(self.chosen)} chosen, one per configuration and seed (tuning.csv lists "
            f"them); each point's compute is {counted} (tune_compute={self.compute})"
        )


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def check_column(frame: pd.DataFrame, column: str, *, option: str) -> None:
    """A one-line error when `column` is missing or has no values: say which and what to do."""
    if column not in frame.columns:
        raise ConfigError(f"{option}={column}: the runs have no column {column}")
    if frame[column].isna().all():
        hint = " (these runs recorded no energy; choose another x)" if column.startswith("energy") else ""
        raise ConfigError(
            f"{option}={column}: column {column} has no values in any of {len(frame)} runs{hint}"
        )


def prepare_runs(
    frame: pd.DataFrame,
    *,
    x: str,
    error: str = "test_error",
    models: Sequence[str] | str | None = None,
    datasets: Sequence[str] | str | None = None,
    seeds: str = "mean",
    group_by: Sequence[str] = (),
    frontier: bool = False,
    contended: str = "drop",
    collapsed: str = "drop",
    tune: Sequence[str] = (),
    tune_compute: str = "best",
    selected: SelectedRuns | None = None,
) -> PreparedRuns:
    """Filter and shape runs for the regressions: columns `error`, `x`, plus the identity columns kept.
    With a time-based `x`, runs flagged contended are dropped (and counted) unless contended="keep"; runs
    flagged collapsed (no better than chance) likewise unless collapsed="keep".

    With `tune` (config keys or columns that were swept, e.g. trainer.optimizer.lr), each configuration
    (`group_by` and seed) is searched over them: its run with the lowest validation error stands for it,
    with that run's test error, and with its own compute (tune_compute="best") or the search's total
    ("sum"). Selection never looks at the test error, and happens before any run is dropped for its x:
    `selected` (select_runs' answer for the same frame and options) saves redoing it for every x."""
    if x not in COMPUTE_COLUMNS:
        raise ConfigError(f"x={x} is not a compute column; choose one of {', '.join(COMPUTE_COLUMNS)}")
    if seeds not in ("mean", "keep"):
        raise ConfigError(f"seeds={seeds} is unknown; use seeds=mean (average over seeds) or seeds=keep")
    if contended not in ("drop", "keep"):
        raise ConfigError(f"contended={contended} is unknown; use contended=drop or contended=keep")
    if collapsed not in ("drop", "keep"):
        raise ConfigError(f"collapsed={collapsed} is unknown; use collapsed=drop or collapsed=keep")
    if tune_compute not in TUNE_COMPUTE:
        raise ConfigError(
            f"tune_compute={tune_compute} is unknown; use tune_compute=best or tune_compute=sum"
        )
    check_column(frame, x, option="x")
    check_column(frame, error, option="error")
    if selected is None:
        selected = select_runs(
            frame, models=models, datasets=datasets, group_by=group_by, tune=tune, tune_compute=tune_compute
        )
    runs, tuning, dropped = selected.runs, selected.tuning, dict(selected.dropped)
    if collapsed == "drop" and "collapsed" in runs.columns:
        why = "collapsed (final error no better than chance; collapsed=keep keeps them)"
        if tuning is not None:
            why = (
                "chosen by tuning but collapsed (the best of their search on validation is no better than "
                "chance on test; collapsed=keep keeps them)"
            )
        runs, dropped[why] = _keep(runs, runs["collapsed"].ne(True))
        if runs.empty:
            raise ConfigError("every run collapsed to chance; fix the training or pass collapsed=keep")
    runs, dropped[f"no {x} or {error}"] = _keep(runs, runs[x].notna() & runs[error].notna())
    if contended == "drop" and x in TIME_BASED_COLUMNS and "contended" in runs.columns:
        why = f"contended, so their {x} is not of the computation alone (contended=keep keeps them)"
        runs, dropped[why] = _keep(runs, runs["contended"].ne(True))
        if runs.empty:
            raise AllContended(
                f"x={x}: every run was contended; rerun on a quiet machine or pass contended=keep"
            )
    if error != "error":  # a run record's own `error` is why it failed (text): the regressions need the name
        runs = runs.drop(columns=["error"], errors="ignore").rename(columns={error: "error"})
    filtered = runs.reset_index(drop=True)
    mixed = () if tuning is not None else varying_keys(runs, group_by)
    if seeds == "mean":
        runs = average_seeds(runs, x=x, keys=[k for k in grouping_columns(group_by, runs) if k != "seed"])
    everything = runs.reset_index(drop=True)
    everything["on_frontier"] = frontier_mask(everything, x)
    points = everything[everything["on_frontier"]] if frontier else everything
    kept = {reason: count for reason, count in dropped.items() if count}
    return PreparedRuns(points.reset_index(drop=True), everything, filtered, kept, tuning, mixed)


@dataclass(frozen=True)
class SelectedRuns:
    """The runs every x starts from: completed, of the chosen models and datasets, and with tune= the run
    standing for each configuration (chosen without looking at x, so once for all of them)."""

    runs: pd.DataFrame
    tuning: Tuning | None
    dropped: dict[str, int]


def select_runs(
    frame: pd.DataFrame,
    *,
    models: Sequence[str] | str | None = None,
    datasets: Sequence[str] | str | None = None,
    group_by: Sequence[str] = (),
    tune: Sequence[str] = (),
    tune_compute: str = "best",
) -> SelectedRuns:
    """The first, x-independent half of prepare_runs (see there)."""
    dropped: dict[str, int] = {}
    runs = frame
    if "status" in runs.columns:
        runs, dropped["not completed"] = _keep(runs, runs["status"] == "completed")
    for column, wanted in (("model", _as_list(models)), ("data", _as_list(datasets))):
        if wanted is None:
            continue
        if column not in runs.columns:
            raise ConfigError(f"filter.{column}: the runs have no column {column}")
        runs, dropped[f"{column} not in {wanted}"] = _keep(runs, runs[column].isin(wanted))
        if runs.empty:
            raise ConfigError(f"filter.{column}={wanted} leaves no runs")
    tuning = None
    if tune:
        runs, tuning, dropped[f"no {TUNE_ON} to tune on"] = select_tuned(
            runs, tune, group_by=group_by, compute=tune_compute
        )
    return SelectedRuns(runs, tuning, dropped)


def varying_keys(runs: pd.DataFrame, group_by: Sequence[str]) -> tuple[str, ...]:
    """Config keys (config.* columns) that differ between runs of one configuration and seed: a sweep over
    something `group_by` does not name, whose runs would be averaged as if they were seeds."""
    identity = grouping_columns(group_by, runs)
    identity += ["seed"] if "seed" in runs.columns and "seed" not in identity else []
    config = [c for c in runs.columns if c.startswith("config.") and c not in identity]
    if not identity or not config or len(runs) < 2:
        return ()
    counts = runs.groupby(identity, dropna=False, observed=True)[config].nunique(dropna=False)
    return tuple(c.removeprefix("config.") for c in config if (counts[c] > 1).any())


def tune_columns(frame: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The column of each tuned key: a record field (model_width) or a config key (config.<key>)."""
    columns = []
    for key in keys:
        column = next((c for c in (key, f"config.{key}") if c in frame.columns), None)
        if column is None:
            raise ConfigError(
                f"tune={key}: the runs have no column {key} or config.{key}; name a key the sweep varied, "
                "e.g. tune=[trainer.optimizer.lr]"
            )
        columns.append(column)
    return columns


def select_tuned(
    runs: pd.DataFrame, keys: Sequence[str], *, group_by: Sequence[str], compute: str
) -> tuple[pd.DataFrame, Tuning, int]:
    """(the chosen runs, what was searched, how many runs had no validation error to rank them by).

    A configuration is `group_by` (less the tuned columns) and the seed; among its runs, the one with the
    lowest validation error is chosen (ties: the first in the tuned keys' order). With compute="sum" its
    costs (`SEARCH_COST_COLUMNS`, `x` among them) become the totals over the completed runs searched for
    it (null if one of them has none), and it counts as contended when any of them was."""
    if TUNE_ON not in runs.columns or runs[TUNE_ON].isna().all():
        raise ConfigError(
            f"tune= selects on {TUNE_ON}, which none of these runs recorded; train them with a validation "
            "split (data.val_fraction > 0)"
        )
    columns = tune_columns(runs, keys)
    runs, missing = _keep(runs, runs[TUNE_ON].notna())
    identity = [k for k in grouping_columns(group_by, runs) if k not in columns]
    identity += ["seed"] if "seed" in runs.columns and "seed" not in identity else []
    if not identity:
        raise ConfigError("tune= needs group_by columns that identify a configuration (e.g. model)")
    spread = runs.groupby(identity, dropna=False, observed=True)[columns].nunique(dropna=False).max()
    for key, column in zip(keys, columns, strict=True):
        if spread[column] < 2:
            raise ConfigError(
                f"tune={key}: no configuration has runs at two values of it (group_by already separates "
                "its values, or the sweep did not vary it); tune a swept key outside group_by"
            )
    ordered = runs.sort_values([TUNE_ON, *columns], kind="stable")
    grouped = ordered.groupby(identity, dropna=False, sort=False, observed=True)
    chosen = ordered.loc[grouped.head(1).index].copy()
    chosen["searched"] = grouped[TUNE_ON].transform("size").loc[chosen.index].astype(int)
    if compute == "sum":
        for cost in (c for c in SEARCH_COST_COLUMNS if c in chosen.columns):
            totals = grouped[cost].transform(lambda v: v.sum() if v.notna().all() else np.nan)
            chosen[cost] = totals.loc[chosen.index]
        if "contended" in chosen.columns:
            chosen["contended"] = grouped["contended"].transform(lambda c: c.eq(True).any()).loc[chosen.index]
    listed = [c for c in (*identity, *columns, TUNE_ON, "test_error", "searched", "run_id") if c in chosen]
    table = chosen[list(dict.fromkeys(listed))].sort_values(identity, kind="stable").reset_index(drop=True)
    tuning = Tuning(
        tuple(keys), compute, len(runs), table.rename(columns=dict(zip(columns, keys, strict=True)))
    )
    return chosen.sort_index(), tuning, missing


def grouping_columns(group_by: Sequence[str], runs: pd.DataFrame) -> list[str]:
    """The columns of `runs` that `group_by` names; an entry ending in `.*` names every column under it
    (`config.model.*`: every constructor argument of the model, so runs of a user's model that differ in
    one, `+model.hidden=8,16`, are separate configurations like model.width)."""
    columns = []
    for key in group_by:
        if key.endswith(".*"):
            columns += sorted(c for c in runs.columns if c.startswith(key[:-1]) and c not in columns)
        elif key in runs.columns and key not in columns:
            columns.append(key)
    return columns


def _keep(frame: pd.DataFrame, mask: pd.Series) -> tuple[pd.DataFrame, int]:
    dropped = int((~mask).sum())
    return (frame if not dropped else frame[mask]), dropped  # keeping every row copies none


def average_seeds(runs: pd.DataFrame, *, x: str, keys: list[str]) -> pd.DataFrame:
    """One row per configuration (`keys`): mean error and mean compute over its seeds, and how many."""
    if not keys:
        raise ConfigError("seeds=mean needs group_by columns that identify a configuration (e.g. model)")
    numeric = [c for c in dict.fromkeys(["error", x, "params", "n_train", "year"]) if c in runs.columns]
    numeric = [c for c in numeric if c not in keys]
    grouped = runs.groupby(keys, dropna=False, sort=True, observed=True)
    averaged = grouped[numeric].mean()
    averaged["n_seeds"] = grouped.size()
    return averaged.reset_index()


def frontier_mask(points: pd.DataFrame, x: str) -> pd.Series:
    """The compute-efficient frontier: points whose error beats every point that used less compute."""
    ordered = points.sort_values([x, "error"], kind="stable")
    best_before = ordered["error"].cummin().shift(fill_value=np.inf)
    return (ordered["error"] < best_before).reindex(points.index)
