"""The shipped study's tables, machine record and README (harness.report.study, used by scripts/study.sh)."""

import json

import numpy as np
import pandas as pd
import pytest

from harness.report import study
from harness.results import RunRecord, load, write_curve, write_record


@pytest.fixture
def runs(tmp_path):
    """Six completed runs with energy and learning curves, in a sweep-like tree."""
    root = tmp_path / "runs"
    for i, (width, n_train) in enumerate((w, n) for w in (8, 16, 32) for n in (100, 200)):
        run_dir = root / "multirun" / "x" / f"{i}_mlp_digits"
        record = RunRecord(
            run_id=f"r{i}",
            status="completed",
            model="mlp",
            model_width=width,
            data="digits",
            n_train=n_train,
            seed=0,
            params=100 * width,
            test_error=0.1 + 1.0 / width,
            train_time_s=2.0,
            wall_time_s=3.0,
            energy_total_j=15.0 + i,
            energy_gpu_j=5.0,
            energy_method_gpu="nvml_counter",
            energy_cpu_j=4.0,
            energy_ram_j=6.0 + i,
            energy_method_cpu="rapl",
            energy_method_ram="estimate:codecarbon_ram_dimm_rule(20 W, machine)",
            energy_gpu_shared=False,
            started_at=f"2026-11-23T10:0{i}:00+00:00",
            device_name="test cpu",
        )
        write_record(run_dir, record)
        write_curve(run_dir, [{"step": 10, "epoch": 1.0, "test_error": 0.5}])
    return root


def test_tables_are_relative_and_loadable(runs, tmp_path):
    table = study.write_tables(runs, tmp_path / "dest")
    assert len(table) == 6 and all(not p.startswith("/") for p in table["run_dir"])
    assert len(load(tmp_path / "dest" / "runs.parquet")) == 6 == len(load(tmp_path / "dest" / "runs.csv"))
    curves = pd.read_csv(tmp_path / "dest" / "curves.csv")
    assert len(curves) == 6 and {"run_id", "test_error"} <= set(curves.columns)


def _study_args(action, runs, dest, *extra):
    common = ["--runs", str(runs), "--dest", str(dest), "--dataset", "digits", "--device", "cpu"]
    return [action, *common, "--preset", "study_digits_cpu", *extra]


def test_readme_states_command_commit_machine_energy_and_fits(runs, tmp_path):
    dest = tmp_path / "dest"
    study.main(_study_args("tables", runs, dest))
    (dest / "fit").mkdir()
    fit = {"x": "network_operations", "spec": "poly", "points": "all", "n": 6, "r2": 0.9}
    fit.update(slope=-0.1, slope_ci_low=-0.12, slope_ci_high=-0.08, k=10.0, k_ci_low=8.3, k_ci_high=12.5)
    pd.DataFrame([fit]).to_csv(dest / "fit" / "fits.csv", index=False)
    held = {"model": "poly: x", "scale": "largest width and n_train", "architecture": "mlp"}
    pd.DataFrame(
        [{**held, "relative_error": 0.04, "corner": True}, {**held, "relative_error": 0.08, "corner": False}]
    ).to_csv(dest / "fit" / "holdout.csv", index=False)
    machine = tmp_path / "machine.json"
    info = study.machine_info("2026-11-23T10:00:00Z", "abc123", {"digits": "42"}, {"digits": "0"})
    machine.write_text(json.dumps(info))
    study.main(
        _study_args(
            "readme",
            runs,
            dest,
            "--commit",
            "abc123",
            "--machine",
            str(machine),
            "--fit-command",
            "harness fit results=x",
        )
    )
    text = (dest / "README.md").read_text()
    total = sum(15.0 + i for i in range(6))
    assert f"{total:.4g} J" in text and "GPU 30 J (nvml_counter); CPU 24 J (rapl)" in text
    assert "No window shared the GPU" in text
    assert "abc123" in text and "42 s for the sweep" in text and "`harness fit results=x`" in text
    assert "| network_operations | all | 6 | -0.1 [-0.12, -0.08] | 10 [8.3, 12.5] | 0.9 |" in text
    assert "mlp 4.0%" in text and "slope -0.0836 [-0.0956, -0.0716]" in text
    assert np.isclose(info["wall_s"]["digits"], 42.0) and info["train_status"] == {"digits": 0}


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        study.main(
            [
                "tables",
                "--runs",
                str(tmp_path / "none"),
                "--dest",
                str(tmp_path),
                "--dataset",
                "d",
                "--device",
                "cpu",
                "--preset",
                "p",
            ]
        )
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --runs") and "is not a directory of runs" in line


def _tuned_runs(root):
    """Two models at three learning rates on mnist1d: lr 0.2 is best on validation, 0.05 on test."""
    for i, (model, lr) in enumerate((m, lr) for m in ("gru", "linear_flexible") for lr in (0.05, 0.2, 0.5)):
        val, test = {0.05: (0.3, 0.05), 0.2: (0.1, 0.08), 0.5: (0.5, 0.5)}[lr]
        record = RunRecord(
            run_id=f"t{i}",
            status="completed",
            model=model,
            model_width=32 if model == "gru" else None,
            data="mnist1d",
            n_train=3600,
            seed=0,
            val_error=val,
            test_error=test,
            started_at=f"2026-12-05T01:0{i}:00+00:00",
            config={"trainer": {"optimizer": {"lr": lr}}},
        )
        write_record(root / f"{i}_{model}", record)
    return root


def test_architectures_readme_reports_the_validation_choice_beside_the_published(tmp_path):
    runs = _tuned_runs(tmp_path / "runs")
    dest = tmp_path / "dest"
    study.main(["architectures", "--runs", str(runs), "--dest", str(dest), "--dataset", "mnist1d"])
    text = (dest / "README.md").read_text()
    assert "| gru | 32 | 3600 | 0.2 | 90.0% | 92.0% | 91% |" in text, "chosen on validation, not test"
    assert "| linear_flexible | n/a | 3600 | 0.2 | 90.0% | 92.0% | 32% |" in text
    assert len(load(dest / "runs.parquet")) == 6


def test_readme_sets_tuned_fits_beside_the_search_and_the_untuned(runs, tmp_path):
    dest, previous = tmp_path / "dest", tmp_path / "untuned"
    study.main(_study_args("tables", runs, dest))
    fit = {"x": "network_operations", "spec": "poly", "points": "all", "n": 6, "r2": 0.9}
    for folder, slope in ((dest / "fit", -0.1), (dest / study.SEARCH_FIT, -0.05), (previous / "fit", -0.2)):
        folder.mkdir(parents=True)
        row = {**fit, "slope": slope, "slope_ci_low": slope - 0.01, "slope_ci_high": slope + 0.01}
        pd.DataFrame([{**row, "k": -1 / slope, "k_ci_low": 1.0, "k_ci_high": 30.0}]).to_csv(
            folder / "fits.csv", index=False
        )
    chosen = {"model": "mlp", "model_width": 32, "n_train": 200, "seed": 0, "trainer.optimizer.lr": 0.2}
    pd.DataFrame([{**chosen, "val_error": 0.3, "test_error": 0.35, "searched": 3}]).to_csv(
        dest / "fit" / "tuning.csv", index=False
    )
    (dest / study.NOTES).write_text("## Did the conclusion change?\n\nNo.\n")
    study.main(_study_args("readme", runs, dest, "--previous", str(previous)))
    text = (dest / "README.md").read_text()
    assert "Tuning: 3 runs searched, 1 chosen" in text and "- mlp: 0.2 ×1" in text
    assert "| mlp | 32 | 200 | 0.2 | 70.0% | 65.0% |" in text
    tuned, search = "-0.1 [-0.11, -0.09], 10 [1, 30] (N 6)", "-0.05 [-0.06, -0.04], 20 [1, 30] (N 6)"
    untuned = "-0.2 [-0.21, -0.19], 5 [1, 30] (N 6)"
    assert f"| network_operations | all | {tuned} | {search} | {untuned} |" in text
    assert text.rstrip().endswith("No.")
