"""`harness fit`: the Hydra app end to end, its config, and its promise to write all of `out` or nothing."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import harness.fit as fit_app
from harness.errors import ConfigError, HarnessError
from harness.results import RunRecord, write_record
from harness.settings import FitSettings


@pytest.fixture
def compose_fit():
    def _compose(*overrides):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="harness.conf", version_base="1.3"):
            return compose(config_name="fit", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def fit_main(harness_cli):
    """fit_main(*overrides) -> (exit code, stdout, stderr) of `harness fit` in this process, in tmp_path."""

    def _run(*args):
        proc = harness_cli("fit", *args)
        return proc.returncode, proc.stdout, proc.stderr

    return _run


@pytest.fixture
def records(tmp_path):
    """A results directory: run.json files for 2 models × 4 widths × 4 data sizes × 2 seeds, no energy (16
    configurations per model: enough for L(N, D), at least 3 points per parameter)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "runs"
    index = 0
    for model, factor in (("mlp", 1.0), ("cnn", 0.6)):
        for width in (8, 16, 32, 64):
            for n_train in (300, 900, 2700, 8100):
                for seed in (0, 1):
                    params = int(factor * 100 * width**2)
                    error = (0.03 + 8 / params**0.5 + 2 / n_train**0.5) * np.exp(rng.normal(0, 0.02))
                    record = RunRecord(
                        run_id=f"run{index}",
                        status="completed",
                        model=model,
                        model_width=width,
                        data="digits",
                        n_train=n_train,
                        seed=seed,
                        params=params,
                        epochs=10.0,
                        test_error=float(error),
                        network_operations=6.0 * params * n_train * 10,
                    )
                    write_record(root / f"run{index}", record)
                    index += 1
    return root


def test_config_maps_to_settings(compose_fit):
    cfg = compose_fit(
        "results=somewhere", "x=hardware_burden", "filter.model=[mlp]", "parametric.bootstrap=1200"
    )
    settings = FitSettings.from_config(cfg)
    assert settings.x == "hardware_burden" and settings.models == ("mlp",) and settings.bootstrap == 1200
    assert settings.imputation["coco"] == (0.8944, 2.7356) and settings.targets_for("imagenet") == (
        0.05,
        0.01,
    )
    assert settings.targets_for("digits", "runs") == (0.05, 0.02, 0.01)
    assert settings.flop_per_usd == 6.874e16 and settings.flop_per_lb_co2 == 3.498e17


def test_fit_is_a_plain_function(compose_fit):
    (analysis,) = fit_app.fit(compose_fit("reference=squad"))
    assert analysis.name == "squad" and [f.row["spec"] for f in analysis.fits] == ["poly", "exp"]
    with pytest.raises(ConfigError, match="give one of reference="):
        fit_app.fit(compose_fit())


def test_reference_end_to_end(harness_process, tmp_path):
    # A fresh interpreter: stderr must stay empty, with no warning filter of pytest's in between.
    proc = harness_process("fit", "reference=imagenet", "out=report", "plots=[png]")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "poly_year" in proc.stdout and "-0.0836 [-0.0956, -0.0716]" in proc.stdout
    out = tmp_path / "report"
    names = {p.name for p in out.iterdir()}
    assert {"fits.csv", "extrapolation.csv", "holdout.csv", "report.md", "report.html"} <= names
    assert "imagenet_network_operations.png" in names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"], "Hydra wrote nothing else"


def test_our_runs_end_to_end(fit_main, records, tmp_path):
    code, out, err = fit_main(f"results={records}", "out=ours", "plots=[png,svg]", "parametric.bootstrap=200")
    assert code == 0, err
    names = {p.name for p in (tmp_path / "ours").iterdir()}
    assert {"parametric.csv", "digits_network_operations.png", "digits_network_operations.svg"} <= names
    assert "L(N, D) on digits" in out


def test_too_few_points_for_the_law_are_said_not_fitted_and_no_raw_warning_shows(harness_process, records):
    for record in records.glob("*/run.json"):  # 3 widths × 3 sizes left: 9 points per model
        fields = json.loads(record.read_text())
        if fields["model_width"] == 64 or fields["n_train"] == 8100:
            shutil.rmtree(record.parent)
    proc = harness_process("fit", f"results={records}", "parametric.bootstrap=50")
    assert proc.returncode == 0, proc.stderr
    assert "L(N, D) for cnn not fitted: 9 points for its 5 parameters, at least 15 needed" in proc.stdout
    assert "L(N, D) on digits" not in proc.stdout, "no table of parameters without trustworthy CIs"
    assert all(line.startswith("warning: ") for line in proc.stderr.splitlines()), proc.stderr


def test_missing_energy_on_the_command_line_is_one_line_and_writes_nothing(harness_cli, records, tmp_path):
    proc = harness_cli("fit", f"results={records}", "out=never", "x=energy_total_j")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line == "error: x=energy_total_j: column energy_total_j has no values in any of 64 runs " + (
        "(these runs recorded no energy; choose another x)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x=flops"], "error: x=flops is not a compute column"),
        (["reference=imagenet"], "error: give one of reference="),
        (["filter.data=cifar10"], "error: filter.data=['cifar10'] leaves no runs"),
        (["plots=[gif]"], "error: plots=['gif']"),
        (["specs=[poly,cubic]"], "error: specs=['poly', 'cubic']: choose from poly, exp, quantile10"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(fit_main, records, tmp_path, args, message):
    code, out, err = fit_main(f"results={records}", "out=never", *args)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_an_existing_out_is_replaced_only_when_asked(fit_main, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = fit_main("reference=conll", "out=report", "plots=[]")
    assert code == 2 and "is not empty; pass overwrite=true" in err
    assert (out / "mine.txt").exists()
    code, _, err = fit_main("reference=conll", "out=report", "plots=[]", "overwrite=true")
    assert code == 0, err
    assert not (out / "mine.txt").exists() and (out / "fits.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"], "no staging or old copy left behind"


def test_a_failure_while_writing_leaves_no_half_written_out(compose_fit, tmp_path, monkeypatch):
    analyses = fit_app.fit(compose_fit("reference=squad"))

    def broken(analyses, directory, formats):
        (directory / "fits.csv").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(fit_app, "write_outputs", broken)
    with pytest.raises(HarnessError, match=r"out=.*/out could not be written \(disk full\)"):
        fit_app.write(analyses, tmp_path / "out", formats=(), overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_is_one_line(fit_main, tmp_path):
    code, _, err = fit_main("reference=conll", "out=/proc/harness-fit-out", "plots=[]")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: out=/proc/harness-fit-out could not be written (")


def test_several_x_and_both_point_sets_from_a_collected_table(fit_main, records, tmp_path):
    from harness.results import collect

    _, parquet, _ = collect(records)
    code, out, err = fit_main(
        f"results={parquet}",
        "x=[network_operations]",
        "frontier=both",
        "out=ours",
        "plots=[png]",
        "parametric.bootstrap=50",
    )
    assert code == 0, err
    out_dir = tmp_path / "ours"
    fits = pd.read_csv(out_dir / "fits.csv")
    assert list(fits["points"]) == ["all"] * 3 + ["frontier"] * 3
    holdout = pd.read_csv(out_dir / "holdout.csv")
    assert {"largest width and n_train", "params × n_train"} <= set(holdout["scale"])
    assert set(pd.read_csv(out_dir / "parametric.csv")["model"]) == {"cnn", "mlp"}
    report = (out_dir / "report.md").read_text()
    assert "poly (frontier)" in report and "The corner: the largest width" in report
    assert "out-of-sample check" in out


def test_config_maps_lists_and_frontier_modes(compose_fit):
    cfg = compose_fit("results=somewhere", "x=[network_operations,energy_total_j]", "frontier=both")
    settings = FitSettings.from_config(cfg)
    assert settings.xs == ("network_operations", "energy_total_j") and settings.frontier == "both"
    assert settings.holdout_grid and settings.parametric_by_model
    with pytest.raises(ConfigError, match="frontier must be true or false or both"):
        FitSettings.from_config(compose_fit("results=somewhere", "frontier=maybe"))


def test_a_real_tuned_sweep_end_to_end(compose_train, fit_main, tmp_path):
    """Digits runs at two learning rates, one of which collapses: `harness fit tune=` chooses the other on
    validation; the untuned fit drops the collapsed runs, or, keeping them, names the key it averaged over."""
    from harness.train import run

    results = tmp_path / "runs"
    for i, (width, fraction, lr) in enumerate(
        (w, f, lr) for w in (8, 32) for f in (0.5, 1.0) for lr in (0.05, 3.0)
    ):
        common = ("trainer.epochs=6", "data.val_fraction=0.2", f"model.width={width}")
        run(
            compose_train(*common, f"data.fraction={fraction}", f"trainer.optimizer.lr={lr}"),
            results / str(i),
        )
    code, out, err = fit_main(
        f"results={results}", "tune=[trainer.optimizer.lr]", "specs=[poly]", f"out={tmp_path / 'f'}"
    )
    assert code == 0, err
    assert "of 8 runs searched, 4 chosen, one per configuration and seed" in out
    chosen = pd.read_csv(tmp_path / "f" / "tuning.csv")
    assert set(chosen["trainer.optimizer.lr"]) == {0.05} and (chosen["searched"] == 2).all()
    code, out, err = fit_main(f"results={results}", "specs=[poly]")
    assert code == 0, err
    assert "4 runs dropped: collapsed (final error no better than chance" in out
    code, out, err = fit_main(f"results={results}", "specs=[poly]", "collapsed=keep")
    assert code == 0, err
    assert "differ in trainer.optimizer.lr and were averaged together" in out
