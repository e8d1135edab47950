"""The console script as a user meets it: real output directories, exit codes, one-line errors (in this
process, as `harness_cli` runs it), and the real start-up path in a fresh interpreter (`harness_process`)."""

import json
import os
import sys

import pytest
import torch
from conftest import ONE_THREAD

from harness.preflight import preflight
from harness.results import load


def _records(root):
    return sorted(root.rglob("run.json"))


def test_default_train_run(harness_process, tmp_path):
    proc = harness_process("train")
    assert proc.returncode == 0, proc.stderr
    (path,) = _records(tmp_path / "results" / "runs")
    record = json.loads(path.read_text())
    assert record["status"] == "completed"
    assert record["model"] == "mlp" and record["data"] == "digits"
    assert record["test_error"] < 0.2
    assert (path.parent / "curve.csv").exists()


def test_multirun_writes_one_record_per_job(harness_cli, tmp_path):
    proc = harness_cli("train", "-m", "model.width=8,16", "seed=0,1", "trainer.epochs=2")
    assert proc.returncode == 0, proc.stderr
    assert len(_records(tmp_path / "results" / "runs" / "multirun")) == 4
    frame = load(tmp_path / "results" / "runs")
    assert len(frame) == 4
    assert sorted(zip(frame["model_width"], frame["seed"], strict=True)) == [(8, 0), (8, 1), (16, 0), (16, 1)]


def test_python_m_harness_train_is_equivalent(tmp_path):
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "harness.train", "trainer.max_steps=2", f"paths.results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ONE_THREAD},
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_records(tmp_path)) == 1


def test_unknown_subcommand_prints_usage_and_exits_2(harness_cli):
    proc = harness_cli("trian")
    assert proc.returncode == 2
    assert "unknown command 'trian'" in proc.stderr and "usage: harness" in proc.stderr
    assert harness_cli().returncode == 2
    assert harness_cli("--help").returncode == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.width=0", "model.width must be a positive integer"),
        ("data.fraction=1.5", "data.fraction must be in (0, 1]"),
        ("data.fraction=0", "data.fraction must be in (0, 1]"),
        ("trainer.precision=fp8", "trainer.precision must be one of fp32, bf16, fp16"),
        ("trainer.epochs=0", "trainer.epochs must be positive"),
        ("claim_stale_s=-5", "claim_stale_s=-5 must be positive"),  # read before a claim
    ],
)
def test_bad_values_give_one_line_error_and_no_output(harness_cli, tmp_path, override, message):
    proc = harness_cli("train", override)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "bad input left files behind"
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("trainer.epochs=abc",), "trainer.epochs=abc is not a number; give a number like the default"),
        (("-m", "model.width=8,x"), "model.width=x is not a number"),
        (("trainer.max_steps=abc",), "trainer.max_steps=abc is not a number; give a number or null"),
        (("trainer.compile=1",), "trainer.compile=1 is not a boolean; write trainer.compile=true or"),
    ],
)
def test_values_of_the_wrong_kind_stop_before_hydra_runs(tmp_path, capsys, args, message):
    # In-process (the CLI runs the same preflight before Hydra): text where a number belongs used to pass
    # Hydra and end in a traceback and a failed record.
    with pytest.raises(SystemExit) as stopped:
        preflight("train", [*args, f"paths.results_dir={tmp_path}"], results_dir_key="paths.results_dir")
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not any(tmp_path.iterdir())


def test_values_of_the_right_kind_pass_preflight(tmp_path):
    good = ["trainer.epochs=2.5", "trainer.max_steps=null", "trainer.compile=false", "-m", "model.width=8,16"]
    assert preflight("train", [*good, f"paths.results_dir={tmp_path}"], "paths.results_dir") == []


def test_glob_sweeps_of_a_config_group_pass_preflight(tmp_path):
    # Hydra's glob() over a group's options used to crash preflight ("ConfigLoader is not set").
    args = ["-m", "model=glob([mlp,cnn])", f"paths.results_dir={tmp_path}"]
    assert preflight("train", args, "paths.results_dir") == []


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("model=glob(zz*)", "matches none of model's options (cnn, "),
        ("seed=glob(*)", "seed is not a config group; list the values instead"),
    ],
)
def test_glob_sweeps_that_choose_nothing_are_one_line(tmp_path, capsys, sweep, message):
    with pytest.raises(SystemExit) as stopped:
        preflight("train", ["-m", sweep, f"paths.results_dir={tmp_path}"], "paths.results_dir")
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_missing_data_root_names_where_it_looked(harness_cli, tmp_path):
    proc = harness_cli("train", "data=mnist", f"data.root={tmp_path / 'nowhere'}")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "nowhere" in line and "data.download=true" in line
    assert not _records(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the no-CUDA error")
def test_cuda_without_cuda_is_an_error(harness_cli, tmp_path):
    proc = harness_cli("train", "trainer.device=cuda")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "CUDA is not available" in line and "trainer.device=cpu" in line
    assert not _records(tmp_path)


def test_unknown_model_is_refused_with_the_choices(harness_cli, tmp_path):
    proc = harness_cli("train", "model=nope")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "unknown model 'nope'" in line and "mlp" in line
    assert not _records(tmp_path)


@pytest.mark.parametrize("flag", ["--cfg", "--info"])
def test_show_only_flags_with_multirun_are_one_line_errors(harness_cli, flag):
    proc = harness_cli("train", "-m", flag, "job", "model.width=8,16")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {flag} shows one job's configuration and cannot be combined with -m/--multirun; "
        "drop -m and give each swept key one value"
    )
