"""The scripts' smoke runs that take more than a moment, run as processes in the background of the suite.

Each is a real `scripts/...` command line (its exit status is the script's), sized to seconds. They start when
collection ends (tests/conftest.py, only those whose test in tests/test_scripts.py was selected) and run one
after another on a thread of their own: the suite runs its tests one at a time, so they use the core it
leaves idle on CI's two, instead of adding their minutes to its time. Their tests wait for them (an Event per
run) and check what they wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ONE_THREAD, REPO

SCRIPTS = REPO / "scripts"
# A tiny `harness train`: what the training scripts' smoke runs pass as overrides.
TINY_RUN = ("trainer.max_steps=3", "trainer.eval_every_steps=3", "measure.flops=false", "data.n_train=256")
# The one torchvision model the zoo scripts count: small (0.35 GMACs at 224), a count takes well under 1 s.
SMALL_TORCHVISION = "squeezenet1_1"


@dataclass(frozen=True)
class Smoke:
    """One smoke run: its command line and environment, given the folder it may write in."""

    command: Callable[[Path], list[str]]
    env: Callable[[Path], dict[str, str]] = lambda out: {}
    needs_git: bool = False  # installs committed revisions: needs a git checkout


def _python(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *args]


def _shell(name: str, *args: str) -> list[str]:
    return [str(SCRIPTS / name), *args]


QUICK_MEASURE = ("latency.batch_sizes=[1]", "latency.min_time_s=0.01", "energy.enabled=false")
THEORY_SWEEP = ("+theory=expert", "data.n_train=32,64,128", "seed=0")

# test name in tests/test_scripts.py -> its smoke run (the order they run in: the longest first).
SMOKES = {
    "test_gpu_checks_dry_run": Smoke(lambda out: _shell("gpu_checks.sh", "--dry-run", str(out))),
    "test_bench_contention_smoke": Smoke(
        lambda out: _python(
            "bench_contention.py",
            "--rounds",
            "1",
            "--load-cap-s",
            "60",
            "--out",
            str(out / "c.csv"),
            "--",
            *TINY_RUN,
        ),
    ),
    "test_bench_store_smoke": Smoke(
        lambda out: _python(
            "bench_store.py",
            "--sizes",
            "30",
            "--rounds",
            "1",
            "--sweep-jobs",
            "3",
            "--work",
            str(out / "work"),
            "--out",
            str(out / "store.csv"),
        ),
    ),
    "test_theory_smoke": Smoke(
        lambda out: _shell("theory.sh", str(out / "theory"), *THEORY_SWEEP),
        env=lambda out: {"RUNS": str(out / "runs"), "THEORY_MODELS": "linear_expert"},
    ),
    "test_quickstart_smoke": Smoke(
        # Two of its twelve runs (one model and width, both data fractions): the script, not the sweep.
        lambda out: _shell("quickstart.sh", "model=mlp", "model.width=8", *TINY_RUN),
        env=lambda out: {"RESULTS_DIR": str(out / "runs")},
    ),
    "test_compare_fits_smoke": Smoke(
        lambda out: _python(
            "compare_fits.py", "--base", "HEAD", "--head", "HEAD", "--fits", "theory_n_train_linear_expert"
        ),
        needs_git=True,
    ),
    "test_reproduce_paper_smoke": Smoke(
        lambda out: _shell("reproduce_paper.sh", str(out / "paper"), "plots=[]", "parametric.enabled=false")
    ),
    "test_measure_torchvision_cli_smoke": Smoke(
        lambda out: _python(
            "measure_torchvision_cli.py",
            str(out / "cli.csv"),
            "--models",
            SMALL_TORCHVISION,
            *(f"--override={o}" for o in QUICK_MEASURE),
        )
    ),
    "test_bench_revisions_smoke": Smoke(
        lambda out: _python(
            "bench_revisions.py",
            "--base",
            "HEAD",
            "--pairs",
            "1",
            "--out",
            str(out / "r.csv"),
            "--",
            "+debug=default",
            *TINY_RUN,
        ),
        needs_git=True,
    ),
    "test_bench_startup_smoke": Smoke(
        lambda out: _python(
            "bench_startup.py",
            "--base",
            "HEAD",
            "--rounds",
            "1",
            "--commands",
            "help,error",
            "--out",
            str(out / "s.csv"),
        ),
        needs_git=True,
    ),
}


def git_checkout() -> bool:
    return shutil.which("git") is not None and (REPO / ".git").exists()


@dataclass
class Finished:
    proc: subprocess.CompletedProcess | None
    out: Path
    skipped: str | None = None


@dataclass
class Background:
    """The selected smoke runs, run in order on one thread; `result(name)` waits for one of them."""

    names: list[str]
    root: Path
    done: dict[str, threading.Event] = field(default_factory=dict)
    results: dict[str, Finished] = field(default_factory=dict)
    running: subprocess.Popen | None = None

    def start(self) -> None:
        self.done = {name: threading.Event() for name in self.names}
        threading.Thread(target=self._run_all, name="script-smokes", daemon=True).start()

    def _run_all(self) -> None:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        for name in self.names:
            smoke, out = SMOKES[name], self.root / name
            out.mkdir()
            try:
                if smoke.needs_git and not git_checkout():
                    self.results[name] = Finished(None, out, "needs a git checkout (it installs revisions)")
                    continue
                # The CPU, one thread (as every harness process a test starts), this interpreter and its
                # `harness` first on PATH.
                env = {**os.environ, **ONE_THREAD, "PATH": path, "PYTHON": sys.executable, **smoke.env(out)}
                command = smoke.command(out)
                self.running = subprocess.Popen(
                    command,
                    cwd=out,  # each run in a folder of its own
                    env=env,
                    text=True,
                    start_new_session=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                try:
                    stdout, stderr = self.running.communicate(timeout=600)
                except subprocess.TimeoutExpired:
                    os.killpg(self.running.pid, signal.SIGKILL)
                    stdout, stderr = self.running.communicate()
                code = self.running.returncode
                self.results[name] = Finished(subprocess.CompletedProcess(command, code, stdout, stderr), out)
            except Exception as exc:  # noqa: BLE001 - the test that waits for it reports it
                self.results[name] = Finished(None, out, f"could not run: {exc!r}")
            finally:
                self.done[name].set()

    def stop(self) -> None:
        """At the session's end: a run still going (an interrupted session) is killed with its children."""
        if self.running is not None and self.running.poll() is None:
            os.killpg(self.running.pid, signal.SIGKILL)

    def result(self, name: str) -> Finished:
        """The finished run `name` (each run is killed after 10 minutes; a test waits for those before it)."""
        assert self.done[name].wait(timeout=1800), f"the smoke run of {name} did not finish"
        finished = self.results[name]
        if finished.skipped and finished.skipped.startswith("needs"):
            pytest.skip(finished.skipped)
        assert finished.proc is not None, finished.skipped
        return finished


BACKGROUND = pytest.StashKey[Background]()


def start_background(session: pytest.Session) -> None:
    """Start the smoke runs of the selected tests of tests/test_scripts.py (none selected: nothing)."""
    selected = {item.name for item in session.items if item.path.name == "test_scripts.py"}
    names = [name for name in SMOKES if name in selected]
    if not names:
        return
    root = Path(tempfile.mkdtemp(prefix="script_smokes_"))
    session.config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
    background = Background(names, root)
    session.config.stash[BACKGROUND] = background
    session.config.add_cleanup(background.stop)
    background.start()
