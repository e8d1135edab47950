"""What a sweep's jobs cost beside their training: the harness sweeper's composition (each job the config
Hydra composes, Hydra composing once per shape of job, not twice per job; bad overrides refused in one line
before any job runs), the progress line after each job, the garbage collector's frozen imports."""

from __future__ import annotations

import gc
import pickle

import pytest
from hydra import initialize_config_module
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf

from harness.composition import SweepComposer
from harness.results import RunRecord, write_record
from harness.sweep import SweepProgress

FAST = ("trainer.epochs=1", "measure.flops=false", "energy.codecarbon=false", "+debug=default")
# Jobs as a sweep's launcher asks for them: group choices (model=, trainer/optimizer=, +debug=), values of
# every kind (set, added, force-added, deleted, a dict, an interpolation) and a Hydra setting.
JOBS = [
    ["seed=1"],
    ["seed=2", "+tags.who=me"],
    ["model=cnn", "seed=1"],
    ["model=cnn", "seed=2", "model.width=${seed}"],
    ["~trainer.optimizer.nesterov", "seed=4"],
    ["trainer.optimizer={lr:0.5}", "++trainer.epochs=3"],
    ["trainer/optimizer=adam", "seed=6"],
    ["trainer/optimizer=adam", "seed=7"],
    ["hydra.job.chdir=false", "seed=8"],
    ["seed=10", "+debug=default"],
    ["data=mnist1d", "data.fraction=0.5"],
    ["data=mnist1d", "data.fraction=0.25"],
]


@pytest.fixture
def hydra_loader():
    """(Hydra's own config loader for harness.conf, the config of a sweep over `seed`)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("train", ["seed=1,2", "hydra.sweep.dir=sweep"], RunMode.MULTIRUN)
        yield loader, master
    GlobalHydra.instance().clear()


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


def test_every_job_is_the_config_hydra_composes(hydra_loader):
    loader, master = hydra_loader
    composer = SweepComposer(loader)
    for job in JOBS:
        assert _plain(composer.load_sweep_config(master, job)) == _plain(
            loader.load_sweep_config(master, job)
        ), job
    # One composition of each shape (its config groups and Hydra settings) and one of its first job.
    assert composer.hydra_compositions == 2 * 6


def test_a_sweep_of_one_shape_is_composed_by_hydra_twice_in_all(hydra_loader, monkeypatch):
    loader, master = hydra_loader
    composer = SweepComposer(loader)
    calls = []
    compose = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("overrides"))
        return compose(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    jobs = [[f"seed={seed}", "model.width=8"] for seed in range(6)]
    configs = [composer.load_sweep_config(master, job) for job in jobs + jobs]  # checked, then launched
    assert len(calls) == 2, "the shape and its first job, not each job twice"
    assert [c.seed for c in configs] == list(range(6)) * 2
    assert [list(c.hydra.overrides.task) for c in configs[:2]] == [jobs[0], jobs[1]]
    assert configs[1].hydra.job.override_dirname == "model.width=8,seed=1"


def test_a_pickled_composer_keeps_its_checked_shapes(hydra_loader):
    """joblib's workers and submitit's SLURM tasks get the loader pickled: they compose nothing anew."""
    loader, master = hydra_loader
    composer = SweepComposer(loader)
    composer.load_sweep_config(master, ["seed=1"])
    copied = pickle.loads(pickle.dumps(composer))
    config = copied.load_sweep_config(master, ["seed=5"])
    assert config.seed == 5 and copied.hydra_compositions == composer.hydra_compositions == 2


def test_a_shape_whose_copy_differs_is_composed_by_hydra_job_by_job(hydra_loader, monkeypatch, caplog):
    loader, master = hydra_loader
    composer = SweepComposer(loader)
    monkeypatch.setattr("harness.composition._same", lambda made, composed: False)
    configs = [composer.load_sweep_config(master, [f"seed={seed}"]) for seed in range(3)]
    assert [c.seed for c in configs] == [0, 1, 2]
    assert composer.hydra_compositions == 2 + 2, "the shape and its first job, then each later job"
    assert "composed by Hydra one by one" in caplog.text


def test_a_bad_value_fails_as_hydra_fails_it(hydra_loader):
    loader, master = hydra_loader
    composer = SweepComposer(loader)
    composer.load_sweep_config(master, ["model.width=8"])
    with pytest.raises(ConfigCompositionException) as ours:
        composer.load_sweep_config(master, ["model.nope=8"])
    with pytest.raises(ConfigCompositionException) as hydras:
        loader.load_sweep_config(master, ["model.nope=8"])
    assert str(ours.value) == str(hydras.value)
    assert str(ours.value).startswith("Could not override 'model.nope'.")


def test_a_sweep_composes_its_jobs_once_with_hydra(harness_cli, tmp_path, monkeypatch):
    """Hydra's basic sweeper composed each job twice from scratch (to check it, then to run it)."""
    calls = []
    compose = ConfigLoaderImpl.load_sweep_config

    def counted(self, master_config, sweep_overrides):
        calls.append(list(sweep_overrides))
        return compose(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    proc = harness_cli("train", "-m", "seed=0,1,2", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 1, calls
    assert len(list((tmp_path / "results" / "runs").rglob("run.json"))) == 3


def test_a_bad_override_of_a_sweep_is_one_line_before_any_job(harness_cli, tmp_path):
    proc = harness_cli("train", "-m", "model.nope=1,2", *FAST)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line == ("error: Could not override 'model.nope'.; To append to your config use +model.nope=1"), (
        "as preflight words a bad override of a single run"
    )
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "no job ran, nothing written"


def test_the_line_after_a_job_reads_only_that_jobs_records(tmp_path, monkeypatch):
    progress = SweepProgress(tmp_path, total=4)
    for job, status in enumerate(["completed", "failed", "completed"]):
        write_record(tmp_path / f"{job}_mlp_digits", RunRecord(run_id=f"r{job}", status=status))
        after = progress.counts_after(tmp_path / f"{job}_mlp_digits")
    assert after == progress.counts() == {"done": 3, "failed": 1, "resumed": 0}
    walked: list = []

    def find_records(path):
        walked.append(path)
        return []

    monkeypatch.setattr("harness.sweep.find_records", find_records)
    progress.counts_after(tmp_path / "3_mlp_digits")
    assert walked == [], "a job that left no directory (resumed, refused) is not looked for"
    (tmp_path / "3_mlp_digits").mkdir()
    progress.counts_after(tmp_path / "3_mlp_digits")
    assert walked == [tmp_path / "3_mlp_digits"], "one job's directory, not the sweep's"


def test_a_sweep_counts_each_job_as_it_ends_and_leaves_the_collector_unfrozen(harness_cli, tmp_path):
    """The line after each job counts it (its directory is absolute, the sweep's as given: relative here).
    The imports are frozen out of the garbage collector's full passes while a command runs (harness.cli),
    and once more after a sweep's first job (harness.sweep); nothing stays frozen after it."""
    assert gc.get_freeze_count() == 0
    proc = harness_cli("train", "-m", "seed=0,1", *FAST)
    assert proc.returncode == 0, proc.stderr
    counted = [line.partition("sweep: ")[2][:3] for line in proc.stdout.splitlines() if "sweep: " in line]
    assert counted == ["1/2", "2/2", "2/2"], "after each job, then at the sweep's end"
    assert gc.get_freeze_count() == 0


def test_the_bundled_digits_are_parsed_once_per_process():
    """Each job of a sweep on digits would parse the same CSV again (about 3 ms of a tiny job)."""
    from harness.data.sources import sklearn_digits

    (images, labels), (again, _) = sklearn_digits(), sklearn_digits()
    assert again is images
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0] = 1.0
    assert not labels.flags.writeable
