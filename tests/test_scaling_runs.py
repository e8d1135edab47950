"""Our runs as regression data: filters, seed averaging, the frontier, energy conversions, one-line errors."""

import numpy as np
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.scaling import analyse_runs
from harness.scaling.analysis import fits_table, holdout_table
from harness.scaling.extrapolate import measured_conversions
from harness.scaling.holdout import GRID_SCALE
from harness.scaling.runs import prepare_runs, read_runs
from harness.settings import FitSettings


def _runs(seeds=(0, 1, 2), energy=False) -> pd.DataFrame:
    """Two models × four widths × seeds on one dataset, error a power of compute; one failed run."""
    rng = np.random.default_rng(0)
    rows = []
    for model, offset in (("mlp", 0.0), ("cnn", -0.05)):
        for width in (8, 16, 32, 64):
            for seed in seeds:
                ops = 1e9 * width**2 * (1.5 if model == "cnn" else 1.0)
                error = 10 ** (0.8 + offset - 0.15 * np.log10(ops) + rng.normal(0, 0.01))
                rows.append(
                    {
                        "status": "completed",
                        "error": None,  # a run record's failure message
                        "model": model,
                        "data": "digits",
                        "model_width": width,
                        "n_train": 1000,
                        "seed": seed,
                        "params": 100 * width**2,
                        "test_error": error,
                        "network_operations": ops,
                        "energy_total_j": ops * 2e-9 if energy else None,
                        "emissions_kg": ops * 2e-9 * 1e-7 if energy else None,
                    }
                )
    rows.append({**rows[0], "status": "diverged", "test_error": 0.9})
    return pd.DataFrame(rows)


KEYS = ("model", "data", "model_width", "n_train")


def test_seeds_are_averaged_per_configuration():
    prepared = prepare_runs(_runs(), x="network_operations", group_by=KEYS)
    assert len(prepared.points) == 8 and (prepared.points["n_seeds"] == 3).all()
    assert prepared.dropped == {"not completed": 1}
    first = (
        _runs().query("model == 'cnn' and model_width == 8 and status == 'completed'")["test_error"].mean()
    )
    assert prepared.points.query("model == 'cnn' and model_width == 8")["error"].iloc[0] == pytest.approx(
        first
    )
    kept = prepare_runs(_runs(), x="network_operations", seeds="keep", group_by=KEYS)
    assert len(kept.points) == 24


def test_filters_count_what_they_drop():
    prepared = prepare_runs(_runs(), x="network_operations", models="mlp", group_by=KEYS)
    assert set(prepared.points["model"]) == {"mlp"}
    assert prepared.dropped == {"not completed": 1, "model not in ['mlp']": 12}


def test_contended_runs_leave_time_based_fits_only():
    runs = _runs(seeds=(0,)).assign(hardware_burden=lambda f: f["network_operations"] * 3.0, contended=False)
    runs.loc[[0, 1], "contended"] = True
    dropped = prepare_runs(runs, x="hardware_burden", seeds="keep")
    assert len(dropped.runs) == len(runs) - 3, "two contended and one diverged run left out"
    (why,) = [k for k in dropped.dropped if k.startswith("contended")]
    assert dropped.dropped[why] == 2 and "contended=keep keeps them" in why
    assert len(prepare_runs(runs, x="hardware_burden", seeds="keep", contended="keep").runs) == len(runs) - 1
    assert len(prepare_runs(runs, x="network_operations", seeds="keep").runs) == len(runs) - 1, "a count"
    with pytest.raises(ConfigError, match="every run was contended"):
        prepare_runs(runs.assign(contended=True), x="hardware_burden")
    with pytest.raises(ConfigError, match="contended=maybe is unknown"):
        prepare_runs(runs, x="hardware_burden", contended="maybe")


def test_frontier_keeps_only_runs_beating_every_cheaper_run():
    frame = pd.DataFrame(
        {
            "model": list("abcde"),
            "network_operations": [1, 2, 3, 4, 5],
            "test_error": [0.5, 0.6, 0.4, 0.45, 0.3],
        }
    )
    prepared = prepare_runs(frame, x="network_operations", seeds="keep", frontier=True)
    assert list(prepared.points["model"]) == ["a", "c", "e"]
    assert list(prepared.everything["on_frontier"]) == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (
            {"energy_total_j": None},
            {"x": "energy_total_j"},
            "x=energy_total_j: column energy_total_j has no values",
        ),
        ({}, {"x": "params"}, "x=params is not a compute column"),
        (
            {},
            {"x": "network_operations", "error": "best_test_error"},
            "error=best_test_error: the runs have no",
        ),
        ({}, {"x": "network_operations", "models": ["resnet"]}, r"filter.model=\['resnet'\] leaves no runs"),
        ({}, {"x": "network_operations", "seeds": "median"}, "seeds=median is unknown"),
        ({}, {"x": "network_operations", "group_by": ()}, "seeds=mean needs group_by columns"),
    ],
)
def test_bad_input_is_one_line(change, kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        prepare_runs(_runs().assign(**change), **{"group_by": KEYS, **kwargs})
    assert "\n" not in str(info.value)


def test_read_runs_from_parquet_and_csv(tmp_path):
    frame = _runs()
    frame.to_parquet(tmp_path / "runs.parquet")
    frame.to_csv(tmp_path / "runs.csv", index=False)
    for name in ("runs.parquet", "runs.csv"):
        assert len(read_runs(tmp_path / name)) == len(frame)
    (tmp_path / "runs.txt").write_text("")
    with pytest.raises(ConfigError, match="neither a directory nor a .parquet or .csv"):
        read_runs(tmp_path / "runs.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no runs"):
        read_runs(tmp_path / "empty")


def test_measured_energy_converts_compute_to_joules_and_co2():
    runs = _runs(energy=True)
    conversions = {c.name: c.per_x for c in measured_conversions("network_operations", runs)}
    assert conversions["energy_j_measured"] == pytest.approx(2e-9)
    assert conversions["co2_kg_measured"] == pytest.approx(2e-16)
    assert "usd_measured" not in conversions
    assert measured_conversions("network_operations", _runs()) == []
    assert {c.name: c.per_x for c in measured_conversions("energy_total_j", runs)}["energy_j_measured"] == 1.0


def test_analyse_runs_end_to_end():
    settings = FitSettings(x="network_operations", group_by=KEYS, targets={"runs": (0.01,)}, bootstrap=50)
    (analysis,) = analyse_runs(_runs(energy=True), settings)
    rows = {f.row["spec"]: f.row for f in analysis.fits}
    assert rows["poly"]["slope_ci_low"] < -0.15 < rows["poly"]["slope_ci_high"] and rows["poly"]["n"] == 8
    assert {r["spec"] for r in analysis.extrapolation} == {"poly", "exp"}
    poly = next(r for r in analysis.extrapolation if r["spec"] == "poly")
    assert poly["energy_j_measured"] == pytest.approx(poly["x_needed"] * 2e-9)
    assert poly["usd_paper"] == pytest.approx(poly["x_needed"] / 6.874e16)
    assert analysis.parametric is None and any("n_train takes one value only" in n for n in analysis.notes)
    assert analysis.holdout and analysis.colour == "model"


def _grid(energy=True) -> pd.DataFrame:
    """Two models × 4 widths × 4 data sizes × 2 seeds: error falls with params and n_train, compute grows."""
    rng = np.random.default_rng(1)
    rows = []
    for model, factor in (("mlp", 1.0), ("cnn", 0.7)):
        for width in (8, 16, 32, 64):
            for n_train in (500, 1000, 2000, 4000):
                for seed in (0, 1):
                    params = 50 * width**2
                    error = factor * (0.02 + 3 / params**0.4 + 2 / n_train**0.5) * np.exp(rng.normal(0, 0.02))
                    ops = 6.0 * params * n_train * 10
                    rows.append(
                        {
                            "status": "completed",
                            "model": model,
                            "data": "digits",
                            "model_width": width,
                            "n_train": n_train,
                            "seed": seed,
                            "params": params,
                            "test_error": error,
                            "network_operations": ops,
                            "hardware_burden": ops * 20,
                            "energy_total_j": ops * 1e-9 if energy else None,
                        }
                    )
    return pd.DataFrame(rows)


def test_several_compute_columns_on_all_points_and_the_frontier():
    settings = FitSettings(
        x=["network_operations", "hardware_burden", "energy_total_j"],
        frontier="both",
        group_by=KEYS,
        specs=("poly",),
        bootstrap=20,
    )
    assert settings.xs == ("network_operations", "hardware_burden", "energy_total_j")
    (analysis,) = analyse_runs(_grid(), settings)
    keys = [(f.row["x"], f.row["points"]) for f in analysis.fits]
    assert keys == [(x, p) for x in settings.xs for p in ("all", "frontier")]
    for fit in analysis.fits:
        assert fit.row["n"] == (32 if fit.row["points"] == "all" else len(fit.data)) and fit.row["k"] > 0
    assert set(analysis.background) == set(settings.xs)
    frontier = next(f for f in analysis.fits if f.row["points"] == "frontier")
    assert len(frontier.data) + len(analysis.background["network_operations"]) == 32
    table = fits_table([analysis])
    assert list(table.columns[:4]) == ["benchmark", "source", "spec", "points"]
    grid = [r for r in analysis.holdout if r["scale"] == GRID_SCALE]
    assert {r["model"] for r in grid} >= {"poly: log10(error) ~ log10(network_operations)"}
    assert all(r["n_fit"] == 18 for r in grid if r["model"].startswith("poly"))  # 3 widths × 3 sizes × 2


def test_parametric_is_fitted_per_model():
    settings = FitSettings(group_by=KEYS, specs=("poly",), bootstrap=20)
    (analysis,) = analyse_runs(_grid(energy=False), settings)
    table = analysis.parametric
    assert list(table.columns[:2]) == ["benchmark", "model"] and set(table["model"]) == {"cnn", "mlp"}
    assert len(table) == 10 and (table["n"] == 16).all()
    labels = {r["model"] for r in analysis.holdout if r["scale"] == GRID_SCALE}
    assert {
        "parametric: E + A/N^alpha + B/D^beta (cnn)",
        "parametric: E + A/N^alpha + B/D^beta (mlp)",
    } <= labels
    pooled = analyse_runs(
        _grid(energy=False), FitSettings(**{**settings.__dict__, "parametric_by_model": False})
    )
    assert set(pooled[0].parametric["model"]) == {"all"} and (pooled[0].parametric["n"] == 32).all()
    holdout = holdout_table([analysis])
    assert "corner" in holdout.columns and holdout["corner"].fillna(False).astype(bool).sum() >= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frontier": "sideways"}, "frontier=sideways is unknown; use frontier=false, true or both"),
        ({"x": []}, r"x=\[\] names no compute column"),
    ],
)
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FitSettings(**kwargs)


def _searched(energy=False) -> pd.DataFrame:
    """_runs swept over three learning rates: the middle one is best on validation, the first one's test
    error is the lowest (a test-set selection would take it), and the last one collapsed to chance."""
    base = _runs(seeds=(0, 1), energy=energy)
    frames = []
    for lr, val_shift, test_shift in ((0.01, 0.02, -0.03), (0.1, 0.0, 0.0), (1.0, 0.5, 0.0)):
        runs = base.assign(**{"config.trainer.optimizer.lr": lr, "collapsed": lr == 1.0})
        runs["val_error"] = runs["test_error"] + val_shift
        runs["test_error"] = np.where(lr == 1.0, 0.9, runs["test_error"] + test_shift)
        runs["network_operations"] *= 1 + lr  # each run of the search costs something different
        frames.append(runs)
    return pd.concat(frames, ignore_index=True)


def test_tuning_selects_on_validation_never_on_test():
    runs = _searched()
    tuned = prepare_runs(
        runs, x="network_operations", seeds="keep", group_by=KEYS, tune=["trainer.optimizer.lr"]
    )
    assert len(tuned.points) == 16, "one run per configuration and seed"
    chosen = tuned.tuning.chosen
    assert (chosen["trainer.optimizer.lr"] == 0.1).all(), "lowest val_error, not the lowest test_error (0.01)"
    assert (chosen["searched"] == 3).all() and tuned.tuning.searched == 48
    assert "of 48 runs searched, 16 chosen" in tuned.tuning.note()
    middle = runs[runs["config.trainer.optimizer.lr"] == 0.1].query("status == 'completed'")
    assert sorted(tuned.points["error"]) == pytest.approx(sorted(middle["test_error"]))
    assert sorted(tuned.points["network_operations"]) == pytest.approx(sorted(middle["network_operations"]))
    # Changing every test error cannot change the choice: selection reads validation only.
    shuffled = runs.assign(test_error=np.random.default_rng(0).permutation(runs["test_error"].to_numpy()))
    again = prepare_runs(
        shuffled, x="network_operations", seeds="keep", group_by=KEYS, tune=["trainer.optimizer.lr"]
    )
    assert again.tuning.chosen.drop(columns="test_error").equals(chosen.drop(columns="test_error"))
    # Without tuning, the three learning rates would be averaged together as if they were seeds: said so.
    untuned = prepare_runs(runs, x="network_operations", group_by=KEYS, collapsed="keep")
    assert len(untuned.points) == 8 and untuned.mixed == ("trainer.optimizer.lr",) and tuned.mixed == ()


def test_tune_compute_sum_counts_the_whole_search():
    runs = _searched(energy=True)
    best = prepare_runs(runs, x="energy_total_j", seeds="keep", group_by=KEYS, tune=["trainer.optimizer.lr"])
    total = prepare_runs(
        runs,
        x="energy_total_j",
        seeds="keep",
        group_by=KEYS,
        tune=["trainer.optimizer.lr"],
        tune_compute="sum",
    )
    assert (total.points["error"].to_numpy() == best.points["error"].to_numpy()).all()
    assert total.points["energy_total_j"].to_numpy() == pytest.approx(
        3 * best.points["energy_total_j"].to_numpy()
    )
    ratio = total.runs["network_operations"] / best.runs["network_operations"]
    assert ratio.to_numpy() == pytest.approx((1.01 + 1.1 + 2.0) / 1.1), "every cost column is summed alike"
    assert "the sum over its whole search (tune_compute=sum)" in total.tuning.note()


def test_collapsed_runs_are_left_out_and_counted():
    runs = _searched()
    prepared = prepare_runs(runs, x="network_operations", seeds="keep", group_by=KEYS, tune=())
    why = "collapsed (final error no better than chance; collapsed=keep keeps them)"
    assert prepared.dropped[why] == 16 and (prepared.runs["error"] < 0.9).all()
    kept = prepare_runs(runs, x="network_operations", seeds="keep", group_by=KEYS, collapsed="keep")
    assert len(kept.runs) == len(runs) - 3 and (kept.runs["error"] == 0.9).sum() == 16
    with pytest.raises(
        ConfigError, match="every run collapsed to chance; fix the training or pass collapsed=keep"
    ):
        prepare_runs(runs.assign(collapsed=True), x="network_operations", group_by=KEYS)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda f: f, {"tune": ["trainer.momentum"]}, "tune=trainer.momentum: the runs have no column"),
        (lambda f: f.drop(columns="val_error"), {"tune": ["trainer.optimizer.lr"]}, "data.val_fraction > 0"),
        (
            lambda f: f,
            {"tune": ["trainer.optimizer.lr"], "tune_compute": "max"},
            "tune_compute=max is unknown",
        ),
        (lambda f: f, {"collapsed": "maybe"}, "collapsed=maybe is unknown"),
        (lambda f: f, {"tune": ["n_train"]}, "tune=n_train: no configuration has runs at two values"),
    ],
)
def test_bad_tuning_input_is_one_line(change, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        prepare_runs(change(_searched()), x="network_operations", group_by=KEYS, **kwargs)
    assert "\n" not in str(info.value)


def test_fit_reports_tuning_in_its_notes_and_tuning_csv(tmp_path):
    from harness.report import write_outputs

    runs = _searched(energy=True)
    settings = FitSettings(
        x="network_operations", group_by=KEYS, tune=("trainer.optimizer.lr",), bootstrap=20
    )
    (analysis,) = analyse_runs(runs, settings)
    assert analysis.label == "digits (our runs, lr tuned on validation)"
    assert any("of 48 runs searched, 16 chosen" in note for note in analysis.notes)
    write_outputs([analysis], tmp_path, formats=())
    table = pd.read_csv(tmp_path / "tuning.csv")
    assert len(table) == 16 and set(table["trainer.optimizer.lr"]) == {0.1} and (table["searched"] == 3).all()
    assert "of 48 runs searched" in (tmp_path / "report.md").read_text()


def test_a_clock_based_x_with_every_run_contended_is_skipped_beside_others():
    runs = _grid().assign(contended=True)
    settings = FitSettings(
        x=["network_operations", "hardware_burden"], group_by=KEYS, specs=("poly",), bootstrap=20
    )
    (analysis,) = analyse_runs(runs, settings)
    assert {f.row["x"] for f in analysis.fits} == {"network_operations"}
    assert any(
        "x=hardware_burden: every run was contended" in note and "skipped" in note for note in analysis.notes
    )
    with pytest.raises(ConfigError, match="every run was contended"):
        analyse_runs(runs, FitSettings(x="hardware_burden", group_by=KEYS, specs=("poly",)))
