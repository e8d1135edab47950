"""Sweeps through `hydra/launcher=slurm` on a real, throw-away SLURM cluster (scripts/slurm_cluster.sh).

The cluster needs root and apt-get (or SLURM, munge and MariaDB already installed); elsewhere these tests
skip with the reason. One cluster serves the module and is stopped after it, even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
CANNOT_RUN_HERE = 3  # the script's exit code for "not root, no packages, no apt-get"

pytestmark = pytest.mark.slurm

# The README's cluster command, fitted to a node without GPUs and to tiny runs.
SLURM = (
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "measure.flops=false",
    "energy.codecarbon=false",
)
# The time limit's warning: SIGUSR1 signal_delay_s before timeout_min. SLURM's timer has a resolution of a
# minute and may send it up to 60 s early (once 3 s into a task, before the run could record anything), so
# the test asks for the warning in the job script and sends the very signal itself, with scancel, once the
# run is training: the same path, without a wait that a busy machine could lose.
TIME_LIMITED = ("hydra.launcher.timeout_min=5", "hydra.launcher.signal_delay_s=45")
# Progress lines (DEBUG in sweeps) in each job's train.log: the handshake that a run is training.
PROGRESS = "hydra.verbose=harness.train"
WAIT_S = 240  # a bound on every wait, so a broken cluster fails the test instead of hanging it


def _free_port_block(count: int = 4) -> int:
    """A first port such that it and the next count-1 are free (slurmctld, slurmd, slurmdbd, MariaDB)."""
    for base in range(16817, 17817, count):
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("", port))
        except OSError:
            continue
        return base
    pytest.skip("no 4 free consecutive ports for the test cluster")


@pytest.fixture(scope="module")
def cluster():
    """Start the cluster (installing the packages if needed); yield the environment its clients need."""
    if sys.platform != "linux":
        pytest.skip("the test SLURM cluster runs on Linux only")
    # Not under pytest's tmp_path: munged wants every folder above its socket searchable by all.
    folder = Path(tempfile.mkdtemp(prefix="harness-slurm-"))
    env = {**os.environ, "SLURM_CLUSTER_PORT": str(_free_port_block())}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(folder)],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        if started.returncode == CANNOT_RUN_HERE:
            pytest.skip(started.stderr.strip().splitlines()[-1])
        assert started.returncode == 0, f"the test cluster did not start:\n{started.stderr}"
        yield {
            **env,
            "SLURM_CONF": str(folder / "slurm.conf"),
            "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "HYDRA_FULL_ERROR": "0",
        }
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], env=env, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", "train", "-m", *args]


def _slurm(env: dict, *args: str) -> str:
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("run.json"))]


def _wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)
    return result


def _queue_empty(env: dict) -> bool:
    return not _slurm(env, "squeue", "-h").strip()


def _logs_saying(root: Path, pattern: str, text: str) -> list[Path]:
    return [p for p in root.rglob(pattern) if text in p.read_text(errors="replace")]


def _training(root: Path) -> list[Path]:
    """Runs under `root` that log training steps and have no record yet (the handshake before a signal)."""
    return [p for p in _logs_saying(root, "train.log", " step ") if not (p.parent / "run.json").exists()]


def _stop_submitter(proc: subprocess.Popen) -> None:
    """The submitting command only polls the queue; once its tasks are gone it is not needed."""
    proc.terminate()
    proc.wait(timeout=60)


def test_array_sweep_writes_one_completed_record_per_config_and_the_table(cluster, tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        _harness(*SLURM, "trainer.epochs=1", "seed=0,1,2,3", f"paths.results_dir={runs}"),
        cwd=tmp_path,
        env=cluster,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stderr
    records = _records(runs)
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]
    assert {r["status"] for r in records} == {"completed"}
    assert len({r["config_hash"] for r in records}) == 4
    assert len({r["slurm_job_id"] for r in records}) == 1  # one array ...
    assert sorted(r["slurm_array_task_id"] for r in records) == [0, 1, 2, 3]  # ... of four tasks
    node = _slurm(cluster, "sinfo", "-h", "-o", "%n").strip()
    assert {r["slurm_node"] for r in records} == {node}
    (table,) = runs.rglob("runs.parquet")
    assert len(pd.read_parquet(table)) == 4 and "4 runs" in done.stdout


def test_time_limit_warning_interrupts_resubmission_runs_only_what_is_missing_scancel_leaves_whole_files(
    cluster, tmp_path
):
    runs = tmp_path / "runs"
    command = _harness(
        *SLURM, *TIME_LIMITED, PROGRESS, "trainer.epochs=1,100000", f"paths.results_dir={runs}"
    )

    # 1. The 1-epoch task completes; the other trains until the time limit's warning, SIGUSR1, and records
    #    itself.
    first = subprocess.Popen(
        command, cwd=tmp_path, env=cluster, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until(lambda: _records(runs) and _training(runs), "one record and the other run training")
        (script,) = runs.rglob(".submitit/*/*_submission.sh")
        assert "#SBATCH --signal=USR1@45" in script.read_text() and "#SBATCH --time=5" in script.read_text()
        (array,) = set(_slurm(cluster, "squeue", "-h", "-o", "%F").split())
        _slurm(cluster, "scancel", "--signal=USR1", array)  # what SLURM sends 45 s before the limit
        _wait_until(lambda: len(_records(runs)) == 2, "both tasks' records")
        _wait_until(lambda: _queue_empty(cluster), "the array to leave the queue")
    finally:
        _stop_submitter(first)
    by_epochs = {r["epochs"]: r for r in _records(runs)}
    assert by_epochs[1.0]["status"] == "completed"
    limited = by_epochs[100000.0]
    assert limited["status"] == "interrupted" and "SIGUSR1" in limited["error"], limited["error"]
    assert limited["steps"] > 0 and limited["slurm_array_task_id"] == 1
    # The task exited 128 + SIGUSR1 before its limit: SLURM's accounting (updated a moment later) has it
    # failed, not completed.
    state = ("sacct", "-X", "-n", "-P", "-j", f"{limited['slurm_job_id']}_1", "-o", "State")
    _wait_until(lambda: _slurm(cluster, *state).strip() == "FAILED", "sacct to show the task failed")

    # 2. The same command again: the completed config is skipped, the interrupted one trains again ...
    second = subprocess.Popen(
        command, cwd=tmp_path, env=cluster, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until(
            lambda: _logs_saying(runs, "*_log.out", "skipped: this config already completed"),
            "the completed config to be skipped",
        )
        _wait_until(lambda: _training(runs), "the interrupted config to train")
        # 3. ... until the array is cancelled: SIGTERM, and the run writes a whole interrupted record.
        (array,) = set(_slurm(cluster, "squeue", "-h", "-o", "%F").split())
        _slurm(cluster, "scancel", array)
        _wait_until(lambda: len(_records(runs)) == 3, "the cancelled run's record")
        _wait_until(lambda: _queue_empty(cluster), "the cancelled array to leave the queue")
    finally:
        _stop_submitter(second)
    records = _records(runs)  # every run.json parses
    assert sorted(r["epochs"] for r in records) == [1.0, 100000.0, 100000.0]
    cancelled = next(r for r in records if r["slurm_job_id"] == array)
    assert cancelled["status"] == "interrupted" and "SIGTERM" in cancelled["error"], cancelled["error"]
    assert not [p for p in runs.rglob("*") if p.name.endswith(".tmp")], "no half-written file"
