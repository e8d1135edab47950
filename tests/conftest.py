"""Shared fixtures: Hydra configs composed from the shipped tree, forced onto the CPU and into tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]


def _composer(config_name: str, forced: list[str]):
    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="harness.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=[*forced, *overrides])

    return _compose


@pytest.fixture
def compose_train(tmp_path):
    """compose_train(*overrides) -> the resolved train config, on the CPU, writing under tmp_path."""
    # codecarbon's start-up (~2 s per process) is left to the tests that are about energy.
    forced = ["trainer.device=cpu", f"paths.results_dir={tmp_path / 'runs'}", "energy.codecarbon=false"]
    yield _composer("train", forced)
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_measure():
    """compose_measure(*overrides) -> the resolved measure config, on the CPU."""
    yield _composer("measure", ["trainer.device=cpu"])
    GlobalHydra.instance().clear()


@pytest.fixture
def harness_cli(tmp_path):
    """harness_cli(*args) runs the installed console script's code in a subprocess, like a user would."""

    def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HYDRA_FULL_ERROR": "0"}
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
def _few_threads():
    """Keep each test on few CPU threads: CI has 2 cores and tests must not fight over them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
