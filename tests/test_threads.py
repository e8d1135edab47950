"""The CPU thread policy and the contention evidence in every record (harness/training/threads.py)."""

import subprocess
import sys

import pytest
import torch

import harness.training.threads as threads
from harness.errors import ConfigError
from harness.results.index import config_hash
from harness.train import run
from harness.training.threads import (
    MachineSample,
    cgroup_cpu_quota,
    contention_fields,
    jobs_at_once,
    resolve_cpu_threads,
    usable_cores,
)


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_auto_shares_the_usable_cores_among_the_jobs_at_once(four_cores):
    assert resolve_cpu_threads("auto", jobs=1, others_busy_cores=0.0)[0] == 4
    assert resolve_cpu_threads("auto", jobs=2, others_busy_cores=0.0)[0] == 2
    assert resolve_cpu_threads("auto", jobs=8, others_busy_cores=0.0)[0] == 1
    threads_, why = resolve_cpu_threads("auto", jobs=2, others_busy_cores=0.0)
    assert "4 usable cores / 2 job(s)" in why


def test_auto_leaves_the_cores_other_processes_hold(four_cores):
    assert resolve_cpu_threads("auto", others_busy_cores=1.0)[0] == 3
    assert resolve_cpu_threads("auto", others_busy_cores=0.3)[0] == 4, "noise is not a core"
    assert resolve_cpu_threads("auto", others_busy_cores=7.0)[0] == 1, "never below one thread"
    assert "1.0 cores busy with other processes" in resolve_cpu_threads("auto", others_busy_cores=1.0)[1]


def test_omp_num_threads_is_a_ceiling_and_an_explicit_count_is_taken_as_given(four_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_cpu_threads("auto", others_busy_cores=0.0) == (
        2,
        "auto: 4 usable cores / 1 job(s) at once, at most OMP_NUM_THREADS=2",
    )
    assert resolve_cpu_threads(3) == (3, "trainer.cpu_threads")


@pytest.mark.parametrize("bad", [0, -1, "many", True, 1.5])
def test_a_bad_thread_count_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=f"trainer.cpu_threads={bad} is not a thread count"):
        resolve_cpu_threads(bad)


def test_jobs_at_once_follows_joblibs_n_jobs(four_cores):
    assert jobs_at_once(None) == 1 and jobs_at_once(3) == 3
    assert jobs_at_once(-1) == 4 and jobs_at_once(-2) == 3


def test_cgroup_quota_v2_v1_and_unlimited(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) == 2.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v1) is None
    assert usable_cores() >= 1


def _samples(others_busy_s: float, own_cpu_s: float, wall_s: float = 10.0):
    start = MachineSample(wall_s=0.0, machine_busy_s=100.0, own_cpu_s=5.0)
    end = MachineSample(
        wall_s=wall_s, machine_busy_s=100.0 + others_busy_s + own_cpu_s, own_cpu_s=5.0 + own_cpu_s
    )
    return start, end


def test_a_run_beside_a_busy_core_is_contended_and_says_why(four_cores):
    start, end = _samples(others_busy_s=30.0, own_cpu_s=20.0)  # others held 3 of 4 cores; the run used 2
    fields = contention_fields(start, end, threads=2, train_time_s=10.0, train_cpu_s=20.0, gpu_shared=None)
    assert fields.machine_load_others == pytest.approx(3.0) and fields.cpu_utilization == pytest.approx(1.0)
    assert fields.contended is True
    assert fields.contended_reason == "other processes kept 3.0 of 4 cores busy beside this run's 2 thread(s)"


def test_a_fair_share_is_not_contention(four_cores):
    # Two jobs of a sweep on 4 cores, two threads each: each sees the other's 2 cores busy, and that is fine.
    start, end = _samples(others_busy_s=20.0, own_cpu_s=20.0)
    fields = contention_fields(start, end, threads=2, train_time_s=10.0, train_cpu_s=20.0, gpu_shared=False)
    assert fields.contended is False and fields.contended_reason is None


def test_a_shared_gpu_is_contention_and_unreadable_load_is_unknown(four_cores):
    quiet = _samples(others_busy_s=0.0, own_cpu_s=10.0)
    fields = contention_fields(*quiet, threads=1, train_time_s=10.0, train_cpu_s=10.0, gpu_shared=True)
    assert fields.contended is True and "used the GPU" in fields.contended_reason
    blind = MachineSample(0.0, None, 0.0), MachineSample(1.0, None, 1.0)
    fields = contention_fields(*blind, threads=1, train_time_s=1.0, train_cpu_s=1.0, gpu_shared=None)
    assert fields.contended is None and fields.machine_load_others is None


def test_cpu_threads_is_not_part_of_the_config_hash():
    config = {"seed": 0, "trainer": {"epochs": 1, "cpu_threads": "auto"}}
    assert config_hash(config) == config_hash({"seed": 0, "trainer": {"epochs": 1, "cpu_threads": 2}})
    assert config_hash(config) != config_hash({"seed": 0, "trainer": {"epochs": 2, "cpu_threads": "auto"}})


def test_a_run_records_its_threads_and_a_quiet_machine(compose_train, tmp_path, quiet_machine):
    record = run(compose_train("trainer.epochs=1", "trainer.cpu_threads=1"), tmp_path / "run")
    assert record.cpu_threads == 1 and record.cpu_threads_policy == "trainer.cpu_threads"
    assert torch.get_num_threads() == 1
    assert record.cpu_time_s > 0 and record.cpu_utilization > 0
    assert record.machine_load_others == 0.0 and record.contended is False and record.contended_reason is None


SPIN = """
import sys, time
print("spinning", flush=True)
end = time.monotonic() + float(sys.argv[1])  # bounded: stops by itself even if the test dies
while time.monotonic() < end:
    pass
"""


def test_a_run_beside_a_real_cpu_load_is_flagged(compose_train, tmp_path):
    # Twice as many spinning processes as usable cores: whatever else runs, the run cannot get its core.
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN, "120"], stdout=subprocess.PIPE, text=True)
        for _ in range(2 * usable_cores())
    ]
    try:
        for spinner in spinners:
            assert spinner.stdout.readline().strip() == "spinning"  # handshake: the load is on
        record = run(compose_train("trainer.epochs=2", "trainer.cpu_threads=1"), tmp_path / "run")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert record.contended is True, record.machine_load_others
    assert "other processes kept" in record.contended_reason
