"""Shared fixtures: Hydra configs composed from the shipped tree, forced onto the CPU and into tmp_path."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
# The environment of every harness subprocess a test starts: on the CPU, one thread (see _one_thread).
ONE_THREAD = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _composer(config_name: str, forced: list[str]):
    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="harness.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=[*forced, *overrides])

    return _compose


@pytest.fixture
def compose_train(tmp_path):
    """compose_train(*overrides) -> the resolved train config, on the CPU, writing under tmp_path."""
    # conf/debug/default.yaml: the CPU, and codecarbon's start-up left to the tests that are about energy.
    forced = ["+debug=default", f"paths.results_dir={tmp_path / 'runs'}"]
    yield _composer("train", forced)
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_measure():
    """compose_measure(*overrides) -> the resolved measure config, on the CPU."""
    yield _composer("measure", ["trainer.device=cpu"])
    GlobalHydra.instance().clear()


@pytest.fixture
def harness_cli(tmp_path, monkeypatch, capfd):
    """harness_cli(*args) -> CompletedProcess: the console script's code run in this process, in tmp_path.

    The same path a user's command takes (checks, Hydra, the command, exit codes, output), without paying a
    fresh interpreter's start-up each time; what needs a real process boundary uses `harness_process`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command rewrites sys.argv for Hydra
    handlers, level = logging.root.handlers[:], logging.root.level

    def _run(*args: str) -> subprocess.CompletedProcess:
        capfd.readouterr()
        GlobalHydra.instance().clear()
        try:
            main(list(args))
            code = 0
        except SystemExit as stopped:
            code = stopped.code if isinstance(stopped.code, int) else (0 if stopped.code is None else 1)
        finally:
            GlobalHydra.instance().clear()
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["harness", *args], code, out, err)

    yield _run
    # Hydra configures logging for each job, with handlers on this test's captured streams and the job's log
    # file: close those and put back the handlers the session had, so later tests do not log into them.
    for handler in logging.root.handlers:
        if handler not in handlers:
            handler.close()
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.fixture
def harness_process(tmp_path):
    """harness_process(*args) runs the console script's code in a fresh interpreter, in tmp_path: for what
    needs a process of its own (signals, kills, concurrent processes, launchers, the start-up path)."""

    def _run(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, **ONE_THREAD, **(env or {})}
        return subprocess.run(
            [sys.executable, "-c", "from harness.cli import main; main()", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """One CPU thread per test: the tests' models are tiny, and torch's intra-op threads spinning against
    whatever else runs on CI's 2 cores slow a step by up to 20x. OMP_NUM_THREADS caps trainer.cpu_threads=auto
    in runs the test starts; subprocesses get the same (ONE_THREAD)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def quiet_machine(monkeypatch):
    """Runs see a machine that nothing else uses (no other process's CPU time around their training), so a
    test about something else does not depend on how busy the machine is."""
    import harness.train
    from harness.training.threads import MachineSample

    def sample() -> MachineSample:
        # One reading for both: two would differ by whatever ran between them, a load of "others".
        clock, cpu = time.perf_counter(), time.process_time()
        return MachineSample(wall_s=clock, machine_busy_s=cpu, own_cpu_s=cpu)

    monkeypatch.setattr(harness.train, "sample_machine", sample)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """Start the selected smoke runs of tests/test_scripts.py now, in the background: they use the core the
    suite leaves idle (tests/script_smokes.py); their tests wait for them."""
    from script_smokes import start_background

    start_background(session)
