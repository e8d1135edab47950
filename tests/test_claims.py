"""Exactly-once sweeps: claims, a signal at every stage of a run's life, concurrent launches of one sweep."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ONE_THREAD

from harness.results import load
from harness.results.claims import CLAIMS_DIR, Claim, Holder, claim_path, try_claim
from harness.results.index import find_completed
from harness.settings import plain

FAST = ("trainer.epochs=1", "measure.flops=false", "energy.codecarbon=false")


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("run.json"))]


def _write_claim(results: Path, digest: str, *, host: str, pid: int, age_s: float = 0.0) -> Path:
    path = claim_path(results, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "since": "then", "token": "theirs"}))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def _claimed(results_dir: Path, digest: str, *, stale_s: float) -> Claim:
    """try_claim where the test expects to win the claim (a Holder would be a failure, said here)."""
    claim = try_claim(results_dir, digest, stale_s=stale_s)
    assert isinstance(claim, Claim), f"expected to claim {digest}, held by {claim}"
    return claim


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()  # reaped: its pid names no process now
    return proc.pid


def test_one_claim_per_config_and_released_at_the_end(tmp_path):
    first = try_claim(tmp_path, "h", stale_s=300)
    assert isinstance(first, Claim)
    second = try_claim(tmp_path, "h", stale_s=300)
    assert isinstance(second, Holder) and second.pid == os.getpid() and second.host == socket.gethostname()
    assert str(second).startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
    first.release()
    assert not claim_path(tmp_path, "h").exists()
    with _claimed(tmp_path, "h", stale_s=300) as again:
        assert isinstance(again, Claim)
    assert not (tmp_path / CLAIMS_DIR).exists(), "no claim or temporary file left"


def test_a_claim_whose_process_is_gone_is_taken_over(tmp_path):
    _write_claim(tmp_path, "h", host=socket.gethostname(), pid=_dead_pid())
    with _claimed(tmp_path, "h", stale_s=300) as taken:
        assert isinstance(taken, Claim)
    assert not (tmp_path / CLAIMS_DIR).exists()


def test_another_hosts_claim_is_taken_over_only_when_its_heartbeat_is_stale(tmp_path):
    _write_claim(tmp_path, "h", host="elsewhere", pid=1, age_s=10)
    assert isinstance(try_claim(tmp_path, "h", stale_s=300), Holder), "live: its heartbeat is recent"
    _write_claim(tmp_path, "h", host="elsewhere", pid=1, age_s=600)
    with _claimed(tmp_path, "h", stale_s=300) as taken:
        assert isinstance(taken, Claim)


def test_a_claim_stale_at_once_is_refused(harness_cli):
    proc = harness_cli("train", *FAST, "claim_stale_s=0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: claim_stale_s=0 must be positive; the default is 300 (seconds)"


def test_a_held_claim_keeps_its_heartbeat(tmp_path):
    with _claimed(tmp_path, "h", stale_s=0.2) as claim:
        then = time.time() - 3600
        os.utime(claim.path, (then, then))
        deadline = time.monotonic() + 60
        while claim.path.stat().st_mtime == then and time.monotonic() < deadline:
            time.sleep(0.01)  # the heartbeat thread's touch is the handshake
        assert claim.path.stat().st_mtime > then


def test_a_config_claimed_by_a_live_launcher_is_skipped(harness_cli, tmp_path, compose_train):
    from harness.results.index import config_hash

    results = tmp_path / "runs"
    digest = config_hash(plain(compose_train(*FAST)))
    with _claimed(results, digest, stale_s=300) as held:  # this process, alive: a live holder
        proc = harness_cli("train", *FAST, "trainer.device=cpu", f"paths.results_dir={results}")
        assert held.path.exists(), "the skipped launch left the holder's claim alone"
    assert proc.returncode == 0, proc.stderr
    host = socket.gethostname()
    assert f"skipped: claimed by pid {os.getpid()} on {host} since " in proc.stdout
    assert _records(results) == [] and not any(p.is_file() for p in results.rglob("*"))


def test_claim_wait_waits_for_the_holder_then_trains(harness_cli, tmp_path, compose_train, monkeypatch):
    import harness.results.claims
    from harness.results.index import config_hash

    results = tmp_path / "runs"
    digest = config_hash(plain(compose_train(*FAST)))
    held = _claimed(results, digest, stale_s=300)
    polls = []

    def holder_finishes(seconds):  # the handshake: the holder ends while the launcher waits for it
        polls.append(seconds)
        held.release()

    clock = SimpleNamespace(time=time.time, sleep=holder_finishes)  # the claims module's clock alone
    monkeypatch.setattr(harness.results.claims, "time", clock)
    args = (*FAST, "trainer.device=cpu", f"paths.results_dir={results}", "claim_wait=true")
    proc = harness_cli("train", *args)
    assert proc.returncode == 0, proc.stderr
    assert f"waiting: claimed by pid {os.getpid()}" in proc.stdout and len(polls) == 1
    assert [r["status"] for r in _records(results)] == ["completed"]


# Each stage of a run's life and where a signal lands in it: (module, attribute, when the patched call is...).
STAGES = {
    "set-up": ("harness.train", "load_dataset"),
    "warm-up": ("harness.training.loop.Stopwatch", "segment:warmup"),
    "step": ("harness.training.loop.Stopwatch", "segment:train"),
    "evaluation": ("harness.training.loop.Stopwatch", "segment:eval"),
    "record write": ("harness.train", "write_record"),
    "index write": ("harness.train", "mark_completed"),
}


def _signal_at(monkeypatch, stage: str, signum: int) -> None:
    """Raise `signum` in this process the first time the run reaches `stage`."""
    import importlib

    where, name = STAGES[stage]
    name, _, segment = name.partition(":")
    module_name, _, cls = where.rpartition(".") if segment else (where, "", "")
    owner = getattr(importlib.import_module(module_name), cls) if cls else importlib.import_module(where)
    original = getattr(owner, name)
    fired: list[object] = []

    def patched(*args, **kwargs):
        if not fired and (not segment or args[1] == segment):
            fired.append(stage)
            signal.raise_signal(signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)


# SIGTERM at every stage; the other signals where a run's record says which came (SIGINT is Ctrl-C's own).
SIGNALS_AT = [
    pytest.param(stage, signum, id=f"{stage}-{signal.Signals(signum).name}")
    for stage, signum in [(stage, signal.SIGTERM) for stage in STAGES]
    + [("step", signal.SIGHUP), ("evaluation", signal.SIGUSR1)]
]


@pytest.mark.parametrize(("stage", "signum"), SIGNALS_AT)
def test_a_signal_at_every_stage_then_a_relaunch_ends_with_exactly_one_completed_record(
    harness_cli, tmp_path, monkeypatch, quiet_machine, stage, signum
):
    with monkeypatch.context() as patch:
        _signal_at(patch, stage, signum)
        killed = harness_cli("train", *FAST)
    assert killed.returncode == 128 + signum, killed.stderr
    assert "Traceback" not in killed.stdout + killed.stderr
    if stage not in ("step", "evaluation"):  # during training the log says it, and the record
        (line,) = killed.stderr.strip().splitlines()
        said = (
            "while writing its results; its records are kept"
            if stage == "index write"
            else "before training started; nothing was recorded"
        )
        assert line.startswith(f"error: interrupted ({signal.Signals(signum).name}) ") and said in line
    statuses = [r["status"] for r in _records(tmp_path)]
    trained = stage in ("step", "evaluation")
    expected = {"step": ["interrupted"], "evaluation": ["interrupted"], "index write": ["completed"]}
    assert statuses == expected.get(stage, []), "an interrupted record once training has started"
    if trained:
        assert _records(tmp_path)[0]["error"].startswith(
            f"interrupted ({signal.Signals(signum).name}) at step"
        )
    relaunch = harness_cli("train", *FAST)
    assert relaunch.returncode == 0, relaunch.stderr
    after = _records(tmp_path)
    assert [r["status"] for r in after].count("completed") == 1
    assert len(after) == 1 + trained
    assert not list(tmp_path.rglob("*.tmp")), "nothing half-written"
    assert not (tmp_path / "results" / "runs" / CLAIMS_DIR).exists(), "every claim released"


def _launch(cwd: Path, *args: str) -> subprocess.Popen:
    cli = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.Popen(
        cli,
        cwd=cwd,
        env={**os.environ, **ONE_THREAD},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# Four interpreters on CI's 2 cores take ~40 s: the 2x launch runs always, the 4x one with the slow tests.
@pytest.mark.parametrize("launches", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_one_sweep_launched_several_times_at_once_trains_each_config_once(harness_cli, tmp_path, launches):
    # One configuration completed before, and the results' catalog and index in place: every launch's
    # start reconciles (they write the catalog at once), then each job looks up and claims.
    assert harness_cli("train", "model.width=4", *FAST).returncode == 0
    assert harness_cli("collect", "results/runs", "--reindex").returncode == 0
    (tmp_path / "results" / "runs" / "runs.parquet").unlink()
    sweep = ("train", "-m", "model.width=4,5,6,7", *FAST)
    procs = [_launch(tmp_path, *sweep) for _ in range(launches)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * launches, outputs
    skips = sum(out.count("skipped: ") for out in outputs)
    assert skips == launches + 3 * (launches - 1), "width 4 skipped by all, the rest by all launches but one"
    records = _records(tmp_path)
    assert sorted(r["model_width"] for r in records) == [4, 5, 6, 7], "exactly one record per config"
    assert all(r["status"] == "completed" for r in records)
    results = tmp_path / "results" / "runs"
    assert all(find_completed(results, r["config_hash"]) is not None for r in records), "every marker written"
    assert not (results / CLAIMS_DIR).exists(), "every claim released"
    assert sorted(load(results)["model_width"]) == [4, 5, 6, 7], "the catalog agrees with the records"
