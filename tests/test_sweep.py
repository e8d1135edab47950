"""Sweeps: presets, launchers, collection, resume after a kill, concurrent writers, signals, failures."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ONE_THREAD

from harness.interrupts import INTERRUPT_SIGNALS, interrupt_on_signals
from harness.results import RunRecord, load_curves, write_record
from harness.results.index import config_hash, find_completed, mark_completed, rebuild_index
from harness.results.summary import summary_frame, summary_table
from harness.sweep import SweepProgress, assign_device
from harness.training.threads import usable_cores

FAST = ("trainer.epochs=1", "measure.flops=false", "energy.codecarbon=false")


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("run.json"))]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", *args]


def _start(cwd: Path, *args: str, **popen) -> subprocess.Popen:
    """`harness ARGS` in the background on the CPU, stdout discarded, stderr kept as text."""
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(_cli(*args), cwd=cwd, env={**os.environ, **ONE_THREAD}, **popen)


def test_config_hash_ignores_output_paths_not_results():
    base = {"seed": 0, "model": {"width": 8}, "paths": {"results_dir": "a"}, "resume": True}
    assert config_hash(base) == config_hash({**base, "paths": {"results_dir": "b"}, "resume": False})
    assert config_hash(base) != config_hash({**base, "seed": 1})
    assert config_hash(base) != config_hash({**base, "model": {"width": 16}})


def test_jobs_spread_over_gpus(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [assign_device("auto", k) for k in range(5)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert assign_device("cpu", 3) == "cpu" and assign_device("cuda:2", 1) == "cuda:2"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert assign_device("auto", 3) == "auto"


def test_sweep_collects_its_table_and_curves(harness_cli, tmp_path):
    proc = harness_cli("train", "-m", "+sweep=seeds", "seed=0,1,2", *FAST)
    assert proc.returncode == 0, proc.stderr
    (sweep_dir,) = (tmp_path / "results" / "runs" / "multirun").iterdir()
    table = pd.read_parquet(sweep_dir / "runs.parquet")
    assert sorted(table["seed"]) == [0, 1, 2] and set(table["status"]) == {"completed"}
    assert len(pd.read_csv(sweep_dir / "runs.csv")) == 3
    curves = load_curves(sweep_dir)
    assert set(curves["run_id"]) == set(table["run_id"]) and {"step", "test_error"} <= set(curves.columns)
    assert "3 runs" in proc.stdout, "summary table printed at the end"


def test_resume_skips_completed_and_reruns_the_rest(harness_cli, tmp_path):
    first = harness_cli("train", "-m", "model.width=4,8", *FAST)
    assert first.returncode == 0, first.stderr
    again = harness_cli("train", "-m", "model.width=4,8,12", *FAST)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped: this config already completed") == 2
    assert "sweep: 3/3 jobs done, 0 failed, 2 resumed (skipped)" in again.stdout
    sweep_dir = max((tmp_path / "results" / "runs" / "multirun").iterdir())
    summary = (sweep_dir / "summary.md").read_text()
    assert "3 runs (2 completed earlier, skipped by resume)" in summary, "resumed runs are listed too"
    assert summary.count("| resumed |") == 2 and summary.count("| new |") == 1
    assert "| model.width |" in summary and "network ops (FLOP)" in summary, "swept keys and costs"
    widths = sorted(r["model_width"] for r in _records(tmp_path / "results"))
    assert widths == [4, 8, 12], "finished runs were not re-run"
    forced = harness_cli("train", "model.width=4", "resume=false", *FAST)
    assert forced.returncode == 0 and len(_records(tmp_path / "results")) == 4


def test_sweep_progress_counts_records_and_estimates_what_is_left(tmp_path):
    for job, status in enumerate(["completed", "failed"]):
        write_record(tmp_path / f"{job}_mlp_digits", RunRecord(run_id=f"r{job}", status=status))
    (tmp_path / ".resumed").mkdir()
    (tmp_path / ".resumed" / "2.json").write_text("{}")
    progress = SweepProgress(tmp_path, total=6)
    progress.started -= 20.0  # two trained jobs in 20 s: three left take 30 s
    counts = progress.counts()
    assert counts == {"done": 3, "failed": 1, "resumed": 1}
    assert progress.line(counts) == (
        "sweep: 3/6 jobs done, 1 failed, 1 resumed (skipped), 20 s elapsed, ETA 30 s"
    )
    assert "ETA" not in SweepProgress(tmp_path, total=None).line(counts), "no total, no estimate"


def test_summary_shows_swept_keys_and_costs_sorted_and_plain_in_a_pipe():
    rows = [
        {
            "run_id": str(w),
            "status": "completed",
            "seed": 0,
            "config.model.width": w,
            "config.seed": 0,
            "config.paths.results_dir": f"r{w}",
            "test_error": 1 / w,
            "flops_forward": 10.0 * w,
            "network_operations": 3e9 * w,
            "hardware_burden": 1e12,
            "energy_total_j": 2.0,
            "energy_method_gpu": "nvml_counter",
            "energy_method_cpu": "rapl:package",
            "train_time_s": 1.0,
        }
        for w in (64, 8, 16)
    ]
    table = summary_frame(pd.DataFrame(rows))
    assert list(table["model.width"]) == [8, 16, 64], "the swept key, sorted; paths left out"
    assert "paths.results_dir" not in table.columns and "seed" not in table.columns
    assert set(table["energy method"]) == {"nvml_counter+rapl"}
    text = summary_table(pd.DataFrame(rows * 20), terminal=False)
    assert "┃" not in text and max(map(len, text.splitlines())) > 80, "no box drawing, no wrap at 80"


def test_records_are_the_truth_when_a_marker_is_missing(tmp_path):
    # A job killed after its run.json and before its index marker, or a tree copied without its .index.
    results = tmp_path / "runs"
    write_record(results / "a", RunRecord(run_id="a", status="completed", config_hash="h1"))
    write_record(results / "b", RunRecord(run_id="b", status="interrupted", config_hash="h2"))
    assert find_completed(results, "h1") == results / "a"
    assert (results / ".index" / "reconciled").is_file(), "the lookup healed the index"
    assert find_completed(results, "h2") is None and find_completed(results, "h3") is None


def test_a_marker_is_trusted_only_when_its_record_agrees(tmp_path):
    results = tmp_path / "runs"
    record = RunRecord(run_id="a", status="completed", config_hash="h1")
    write_record(results / "a", record)
    mark_completed(results, record, results / "a")
    write_record(results / "a", RunRecord(run_id="a", status="failed", config_hash="h1"))
    assert find_completed(results, "h1") is None


def test_an_ensemble_job_is_complete_only_when_every_member_is(tmp_path):
    job = tmp_path / "runs" / "job"

    def member(index, status):
        fields = {"config_hash": "h", "ensemble_size": 3, "ensemble_index": index}
        write_record(job / f"seed_{index}", RunRecord(run_id=f"j-e{index}", status=status, **fields))

    for index, status in enumerate(("completed", "completed", "interrupted")):
        member(index, status)
    assert find_completed(tmp_path / "runs", "h") is None
    member(2, "completed")  # without its marker (a tree copied in): found when the index is reconciled
    assert rebuild_index(tmp_path / "runs") == 1, "one job, one marker"
    assert find_completed(tmp_path / "runs", "h") == job / "seed_0"


def test_a_tree_copied_without_its_index_resumes(harness_cli, tmp_path):
    assert harness_cli("train", "-m", "model.width=4,8", *FAST).returncode == 0
    shutil.copytree(tmp_path / "results", tmp_path / "copy", ignore=shutil.ignore_patterns(".index"))
    again = harness_cli("train", "-m", "model.width=4,8", *FAST, f"paths.results_dir={tmp_path / 'copy'}")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped: this config already completed") == 2
    assert "sweep: 2/2 jobs done, 0 failed, 2 resumed (skipped)" in again.stdout
    (sweep_dir,) = (tmp_path / "copy" / "multirun").iterdir()
    summary = (sweep_dir / "summary.md").read_text()
    assert "2 runs (2 completed earlier, skipped by resume)" in summary, "a sweep that trained nothing"
    assert len(_records(tmp_path / "copy")) == 2, "nothing re-run"


def test_sigkill_midway_then_relaunch_loses_nothing(tmp_path):
    args = ("train", "-m", "model.width=4,5,6,7", "trainer.epochs=20", *FAST[1:])
    proc = _start(tmp_path, *args, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _records(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["run_id"]: r["model_width"] for r in _records(tmp_path)}
    assert 1 <= len(before) < 4, "the kill landed mid-sweep"
    rerun = _start(tmp_path, *args)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    after = _records(tmp_path)
    assert sorted(r["model_width"] for r in after) == [4, 5, 6, 7], "nothing lost, nothing twice"
    assert all(r["status"] == "completed" for r in after)
    assert before.keys() <= {r["run_id"] for r in after}, "finished runs kept, not re-run"


@pytest.mark.slow
def test_joblib_two_workers_share_the_cores(harness_process, tmp_path):
    # Without OMP_NUM_THREADS, trainer.cpu_threads=auto divides the usable cores between the two workers.
    args = ("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.width=4,8,12", *FAST)
    proc = harness_process(*args, env={"OMP_NUM_THREADS": ""})
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path)
    assert sorted(r["model_width"] for r in records) == [4, 8, 12]
    for record in records:
        assert "/ 2 job(s) at once" in record["cpu_threads_policy"]
        assert record["cpu_threads"] <= max(1, usable_cores() // 2)
    assert "sweep: 3/3 jobs done, 0 failed" in proc.stdout, "progress seen from the launching process"


@pytest.mark.slow
def test_submitit_local_two_jobs(harness_process, tmp_path):
    proc = harness_process("train", "-m", "hydra/launcher=submitit_local", "model.width=4,8", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["model_width"] for r in _records(tmp_path)) == [4, 8]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1])
def test_signals_interrupt_like_ctrl_c_and_set_the_exit_code(signum):
    before = signal.getsignal(signum)
    name = signal.Signals(signum).name
    with pytest.raises(KeyboardInterrupt, match=name), interrupt_on_signals() as caught:
        signal.raise_signal(signum)
    assert caught.exit_code == 128 + signum
    assert signal.getsignal(signum) is before, "the previous handler is restored"
    assert set(INTERRUPT_SIGNALS) == {signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1])
def test_a_signal_during_set_up_is_one_line_its_exit_code_and_nothing_written(
    harness_cli, tmp_path, monkeypatch, signum
):
    import harness.train

    def load_dataset(settings):  # the signal comes while the data loads, before training
        signal.raise_signal(signum)

    monkeypatch.setattr(harness.train, "load_dataset", load_dataset)
    proc = harness_cli("train", *FAST)
    assert proc.returncode == 128 + signum
    (line,) = proc.stderr.strip().splitlines()
    name = signal.Signals(signum).name
    assert line == f"error: interrupted ({name}) before training started; nothing was recorded"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing half-written"


def test_a_signal_before_the_command_runs_is_one_line_and_its_exit_code(harness_cli, tmp_path, monkeypatch):
    import harness.preflight

    monkeypatch.setattr(harness.preflight, "preflight", lambda *a, **k: signal.raise_signal(signal.SIGTERM))
    proc = harness_cli("train")
    assert proc.returncode == 128 + signal.SIGTERM
    assert (
        proc.stderr.strip()
        == "error: interrupted (SIGTERM) before harness train started; nothing was written"
    )
    assert not any(tmp_path.iterdir())


def test_sigterm_records_an_interrupted_run(tmp_path):
    proc = _start(tmp_path, "train", "trainer.epochs=100000", "measure.flops=false", stdout=subprocess.PIPE)
    # Handshake, not a sleep: the first progress line ("step 23/...") says training is under way.
    for line in proc.stdout:
        if " step " in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    (record,) = _records(tmp_path)
    assert record["status"] == "interrupted" and record["steps"] > 0 and record["train_time_s"] > 0
    assert "interrupted" in record["error"]


def test_failing_job_does_not_stop_the_sweep(harness_cli, tmp_path):
    proc = harness_cli("train", "-m", "model.width=0,8", *FAST)
    assert proc.returncode == 1, "the sweep reports its failure"
    statuses = {
        r["model_width"] if r["model_width"] else r["config"]["model"]["width"]: r["status"]
        for r in _records(tmp_path)
    }
    assert statuses == {0: "failed", 8: "completed"}
    failed = next(r for r in _records(tmp_path) if r["status"] == "failed")
    assert "model.width must be a positive integer" in failed["error"]


def test_a_job_crashing_before_its_record_fails_the_sweep_and_is_named(harness_cli, tmp_path, monkeypatch):
    import harness.train

    counted = harness.train._count_compute

    def crash_job_5(settings, job):  # a crash after set-up, before training: no record had been written
        if settings.seed == 5:
            raise RuntimeError("injected crash")
        return counted(settings, job)

    monkeypatch.setattr(harness.train, "_count_compute", crash_job_5)
    proc = harness_cli("train", "-m", "seed=range(0,12)", *FAST)
    assert proc.returncode == 1, "the sweep fails"
    output = proc.stdout + proc.stderr
    assert "sweep: 12/12 jobs done, 1 failed" in output
    last = output.strip().splitlines()[-1]
    assert "1 job(s) of the sweep failed: job 5 (seed=5 trainer.epochs=1" in last, "named with its overrides"
    assert "failed: RuntimeError: injected crash [" in last and last.endswith("5_mlp_digits/run.json]")
    records = _records(tmp_path)
    assert len(records) == 12 and [r["seed"] for r in records if r["status"] == "failed"] == [5]
    assert "job 5 crashed; its record is in" in output


def test_fail_fast_stops_at_the_first_failure(harness_cli, tmp_path):
    proc = harness_cli("train", "-m", "model.width=0,8", "fail_fast=true", *FAST)
    assert proc.returncode == 2
    assert _records(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "+sweep=nope"), "unknown sweep 'nope'; choose one of: compute, data, depth"),
        (("model=nope",), "unknown model 'nope'; choose one of: cnn, custom, gru, linear_expert, "),
        (("-m", "data=digits,nope"), "unknown data 'nope'"),
        (("paths.results_dir=/proc/harness-test",), "paths.results_dir=/proc/harness-test is not writable"),
        (("model.nope=3",), "Could not override 'model.nope'"),
        (
            ("+trainer.lr=1e6",),
            "+trainer.lr: no setting of that name is read, so it would change nothing; "
            "did you mean trainer.optimizer.lr=...? (labels of your own: +tags.lr=<value>)",
        ),
    ],
)
def test_bad_command_lines_are_one_line(harness_cli, tmp_path, args, message):
    proc = harness_cli("train", *args)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_collect_command_skips_corrupt_records(harness_cli, tmp_path):
    assert harness_cli("train", "-m", "seed=0,1", *FAST).returncode == 0
    bad = tmp_path / "results" / "runs" / "broken"
    bad.mkdir()
    (bad / "run.json").write_text("{truncated")
    proc = harness_cli("collect", "results/runs", "--out", "tables")
    assert proc.returncode == 0, proc.stderr
    assert "broken/run.json" in proc.stderr and "2 runs" in proc.stdout
    assert len(pd.read_parquet(tmp_path / "tables" / "runs.parquet")) == 2
    assert harness_cli("collect", "nowhere").returncode == 2


def test_tags_are_kept_in_the_record_but_not_in_its_hash(harness_cli, tmp_path):
    assert harness_cli("train", "+tags.note=first", *FAST).returncode == 0
    (record,) = _records(tmp_path)
    assert record["config"]["tags"] == {"note": "first"}
    again = harness_cli("train", "+tags.note=second", *FAST)
    assert again.returncode == 0 and "skipped: this config already completed" in again.stdout


def test_collect_refuses_an_unwritable_out_and_a_folder_without_runs(harness_cli, tmp_path):
    write_record(tmp_path / "runs" / "a", RunRecord(run_id="a", status="completed"))
    proc = harness_cli("collect", "runs", "--out", "/proc/harness-tables")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: could not write the tables in /proc/harness-tables")
    (tmp_path / "empty").mkdir()
    proc = harness_cli("collect", "empty")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: no run records (run.json) under empty; nothing to collect"
    assert not any((tmp_path / "empty").iterdir()), "no 0-row table"
