"""`harness train`: one measured training run, configured by Hydra (root config conf/train.yaml).

`run(cfg, output_dir)` is the plain, testable function; `main` is the thin Hydra entry point around it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.building import build_model_from_config, model_label
from harness.cli import run_command
from harness.compute.accounting import ForwardCompute, count_run_compute
from harness.compute.hardware import peak_flops_for
from harness.data import StreamedDataset, TrainingData, load_dataset
from harness.device import resolve_device, resolve_precision
from harness.energy import EnergyMeter
from harness.errors import ConfigError
from harness.jobs import JobPlace, JobSteps, run_job
from harness.recording import Measured, finish_record, new_record, new_run_id
from harness.results import RunRecord, write_curve, write_record
from harness.results.index import config_hash, mark_completed
from harness.results.provenance import slurm_job, versions
from harness.results.schema import EnergyFields
from harness.results.store import RECORD_NAME
from harness.settings import RunSettings, TrainerSettings, label_of, plain
from harness.sweep import assign_device
from harness.training.ensemble import share_energy
from harness.training.loop import optimizer_factory
from harness.training.modes import check_job, trainer_for
from harness.training.objective import objective_for
from harness.training.progress import LogProgress, Progress, progress_for
from harness.training.spec import TrainingJob, TrainResult
from harness.training.threads import (
    apply_cpu_threads,
    jobs_at_once,
    resolve_cpu_threads,
    sample_machine,
)

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(cfg: DictConfig, output_dir: Path, progress: Progress | None = None) -> RunRecord:
    """Train once as `cfg` says and write run.json (and curve.csv) into `output_dir`.

    Bad input raises a HarnessError before anything is written. Once training has started, every
    outcome (completed, diverged, interrupted, or a crash) leaves a record of what was measured.
    An ensemble (trainer.mode=ensemble) trains several models: use `run_all`, which returns every record.
    """
    if TrainerSettings.from_config(cfg.trainer).members > 1:
        raise ConfigError("trainer.mode=ensemble writes one record per member; call harness.train.run_all")
    return run_all(cfg, output_dir, progress)[0]


def member_dir(output_dir: Path, members: int, seed: int) -> Path:
    """Where a run's record goes: the job's directory, or one sub-directory per ensemble member."""
    return output_dir if members == 1 else output_dir / f"seed_{seed}"


def run_all(
    cfg: DictConfig,
    output_dir: Path,
    progress: Progress | None = None,
    jobs: int = 1,
    settings: RunSettings | None = None,
) -> list[RunRecord]:
    """Train as `cfg` says; one record per trained model (an ensemble's members, seeds seed, seed+1, ...,
    each in `member_dir`; otherwise the one run in `output_dir`). Errors as `run`. `jobs`: how many jobs
    run at once on this machine (a parallel launcher's), for trainer.cpu_threads=auto; `settings`: `cfg`
    already read (RunSettings.from_config), which the record's config and config_hash still come from."""
    wall_start = time.perf_counter()
    settings = settings or RunSettings.from_config(cfg)
    threads = resolve_cpu_threads(settings.trainer.cpu_threads, jobs)
    apply_cpu_threads(threads[0])  # before any work: data loading and model building use the pools too
    output_dir = Path(output_dir)
    job = _training_job(settings, output_dir, progress)
    try:
        check_job(job)
        records = _member_records(_describe(plain(cfg), settings, job, threads), settings)
        counted = _count_compute(settings, job)
        peak = peak_flops_for(job.device, settings.trainer.precision, settings.hardware.peak_flops)
        job.energy.wait_ready()  # codecarbon's set-up (begun with the meter) ends before anything timed
    except BaseException:  # refused before training: no set-up thread or borrowed logger outlives the job
        job.energy.finish()
        raise
    dirs = [member_dir(output_dir, len(records), record.seed) for record in records]
    done = _Done(records, dirs, wall_start)
    machine_before = sample_machine()
    try:
        results = trainer_for(settings.trainer.mode)(job)
    except Exception as exc:
        done.write_failed(share_energy(EnergyFields(**job.energy.finish()), len(records)), exc)
        raise
    machine = (machine_before, sample_machine())
    energy = share_energy(EnergyFields(**job.energy.finish()), len(records))
    measured = Measured(
        counted=counted,
        peak=peak,
        energy=energy,
        machine=machine,
        threads=threads[0],
        fp_bp_ratio=settings.measure.fp_bp_ratio,
        energy_settings=settings.energy,
        device=job.device,
    )
    for record, result in zip(records, results, strict=True):
        _finish_record(record, result, measured)
    done.write(results if settings.measure.learning_curve else None)
    if all(record.status == "completed" for record in records):
        mark_completed(Path(settings.results_dir), records[0], dirs[0])
    return records


def _training_job(settings: RunSettings, output_dir: Path, progress: Progress | None) -> TrainingJob:
    """Device, precision, data and freshly initialised models (one per member seed) for this run."""
    trainer = settings.trainer
    device = resolve_device(trainer.device)
    dtype = resolve_precision(trainer.precision, device)
    if torch.are_deterministic_algorithms_enabled() != trainer.deterministic:
        # Only on a change: the setter imports torch._inductor (over a second of start-up) on every call.
        torch.use_deterministic_algorithms(trainer.deterministic)
    data = load_dataset(settings.data)
    seeds = [settings.seed + i for i in range(trainer.members)]
    models = []
    for seed in seeds:
        seed_everything(seed)
        models.append(build_model_from_config(settings.model, data.input_shape, data.num_classes))
    return TrainingJob(
        models=models,
        seeds=seeds,
        data=data,
        settings=trainer,
        device=device,
        dtype=dtype,
        progress=progress or LogProgress(logging.DEBUG),
        energy=EnergyMeter(settings.energy, device, output_dir),
    )


def _describe(config: dict, settings: RunSettings, job: TrainingJob, threads: tuple[int, str]) -> RunRecord:
    """The record every model of this job starts from (`config`: the composed config, as plain Python):
    what was asked, on what, with which code."""
    data, trainer = job.data, settings.trainer
    return new_record(
        config,
        device=job.device,
        precision=trainer.precision,
        threads=threads,
        seed=settings.seed,
        model=model_label(settings.model),
        model_width=settings.model.get("width"),
        model_depth=settings.model.get("depth"),
        params=sum(p.numel() for p in job.models[0].parameters() if p.requires_grad),
        data=data.name,
        data_source=data.source,
        data_fraction=settings.data.fraction,
        n_train=data.n_train,
        n_train_full=data.n_train_full,
        n_test=data.n_test,
        n_val=data.n_val,
        chance_error=_chance_error(data),
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        task=data.task,
        error_metric=objective_for(data.task).error_metric,
        trainer_mode=trainer.mode,
        seeds={"init_and_order": settings.seed, **settings.data.seeds},
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        target_error=trainer.target_error,
    )


def _chance_error(data: TrainingData) -> float | None:
    """What a model that learned nothing scores on the test set; unknown (None) for a streamed Dataset,
    whose labels are not read ahead of training."""
    if isinstance(data, StreamedDataset):
        return None
    return objective_for(data.task).chance_error(data.y_train, data.y_test)


def _member_records(base: RunRecord, settings: RunSettings) -> list[RunRecord]:
    """One record per trained model: the job's own, or one per ensemble member with its id and seed.

    Members share the job's config and config_hash (one job, one resume marker); `seed` is the member's."""
    members = settings.trainer.members
    if members == 1:
        return [base]
    records = []
    for index in range(members):
        record, seed = copy.deepcopy(base), settings.seed + index
        record.run_id = f"{base.run_id}-e{index}"
        record.seed, record.ensemble_size, record.ensemble_index = seed, members, index
        if settings.trainer.ensemble_data_order == "shared":
            own = {k: v for k, v in base.seeds.items() if k != "init_and_order"}
            record.seeds = {**own, "init": seed, "order": settings.seed}
        else:
            record.seeds = {**base.seeds, "init_and_order": seed}
        records.append(record)
    return records


def _count_compute(settings: RunSettings, job: TrainingJob) -> ForwardCompute | None:
    """FLOPs of one forward pass and of one training step, on the first model (measure.flops)."""
    if not settings.measure.flops:
        return None
    data, device = job.data, job.device
    x, y = data.head(min(settings.trainer.batch_size, data.n_train))
    return count_run_compute(
        job.models[0].to(device),
        x.to(device),
        y.to(device),
        optimizer_factory(settings.trainer),
        job.dtype,
        strict=settings.measure.strict_flops,
        loss_fn=objective_for(data.task).loss,
    )


@dataclass(frozen=True)
class _Done:
    """Writes a job's records, one per model, each in its directory with its share of the job's wall time."""

    records: list[RunRecord]
    dirs: list[Path]
    wall_start: float

    def write(self, results: list[TrainResult] | None) -> None:
        """Each record (and, given `results`, its learning curve)."""
        for i, (record, where) in enumerate(zip(self.records, self.dirs, strict=True)):
            if results is not None:
                write_curve(where, [dataclasses.asdict(row) for row in results[i].curve])
            record.wall_time_s = (time.perf_counter() - self.wall_start) / len(self.records)
            write_record(where, record)
        for record in self.records:
            if record.collapsed:
                log.warning(
                    "collapsed run %s: test error %.4f is no better than chance (%.4f); fits leave it out "
                    "(collapsed=keep keeps it)",
                    record.run_id,
                    record.test_error,
                    record.chance_error,
                )
        if self.records[0].contended:
            log.warning(
                "contended run: %s; its times (and hardware burden, energy) are not this computation's alone",
                self.records[0].contended_reason,
            )

    def write_failed(self, energy: EnergyFields, exc: Exception) -> None:
        """Training crashed: each record keeps what the meter measured and the error."""
        for record in self.records:
            record.fill(energy)
            record.error = f"{type(exc).__name__}: {exc}"
        self.write(None)


def _finish_record(record: RunRecord, result: TrainResult, measured: Measured) -> None:
    """Fill `record` from what training measured (harness.recording.finish_record: outcome, times, compute,
    energy, cost, contention), then what only this trainer knows: its mode and its learning curve."""
    finish_record(record, result, measured)
    record.trainer_mode = result.mode or record.trainer_mode
    record.trainer_fallback, record.cuda_graph = result.fallback, result.cuda_graph
    record.test_error, record.test_loss = result.last("test_error"), result.last("test_loss")
    record.train_loss, record.best_test_error = result.last("train_loss"), result.best_test_error()
    record.val_error, record.val_loss = result.last("val_error"), result.last("val_loss")
    if record.status == "completed":
        record.collapsed = objective_for(record.task).collapsed(record.test_error, record.chance_error)
    reached = result.first_reaching(record.target_error)
    if reached is not None:
        record.time_to_target_s, record.steps_to_target = reached.train_time_s, reached.step


def _failed_record(cfg: DictConfig, error: str) -> RunRecord:
    """A sweep job refused before training: kept as a record so the sweep's table shows why."""
    config = plain(cfg)
    return RunRecord(
        run_id=new_run_id(),
        status="failed",
        error=error,
        config=config,
        config_hash=config_hash(config),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seed=config.get("seed"),
        model=model_label(config["model"]),
        data=label_of(config["data"].get("name"), config["data"].get("_target_")),
        versions=versions(),
        **slurm_job(),
    )


@hydra.main(version_base="1.3", config_path="pkg://harness.conf", config_name="train")
def hydra_main(cfg: DictConfig) -> None:
    """One job: a single run, or one point of a sweep (where failures are recorded and the sweep goes on
    unless fail_fast=true). The job's path (claim, resume, failures, exit code) is harness.jobs.run_job."""
    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    if sweeping:
        cfg.trainer.device = assign_device(cfg.trainer.device, hydra_cfg.job.num)
    place = JobPlace(
        output_dir=Path(hydra_cfg.runtime.output_dir),
        results_dir=Path(cfg.paths.results_dir),
        digest=config_hash(plain(cfg)),
        sweep=(Path(hydra_cfg.sweep.dir), hydra_cfg.job.num) if sweeping else None,
        launcher_files=frozenset({".hydra", f"{hydra_cfg.job.name}.log"}),
    )
    jobs = jobs_at_once(hydra_cfg.launcher.get("n_jobs")) if sweeping else 1

    def train(settings: RunSettings) -> list[RunRecord]:
        progress = progress_for(interactive_run=not sweeping)
        records = run_all(cfg, place.output_dir, progress=progress, jobs=jobs, settings=settings)
        _log_outcome(records, place.output_dir)
        return records

    steps = JobSteps(
        read_settings=lambda: RunSettings.from_config(cfg),
        train=train,
        failed_record=lambda error: _failed_record(cfg, error),
    )
    code = run_job(place, steps, fail_fast=bool(cfg.fail_fast))
    if code:
        sys.exit(code)


def _log_outcome(records: list[RunRecord], output_dir: Path) -> None:
    for record in records:
        log.info(
            "%s %s: test error %s, %d steps, %.2f s training, record %s",
            record.run_id,
            record.status,
            "n/a" if record.test_error is None else f"{record.test_error:.4f}",
            record.steps or 0,
            record.train_time_s or 0.0,
            member_dir(output_dir, len(records), record.seed) / RECORD_NAME,
        )


def main() -> None:
    """`python -m harness.train`: the same command as `harness train` (checks before Hydra runs)."""
    run_command("train", sys.argv[1:])


if __name__ == "__main__":
    main()
