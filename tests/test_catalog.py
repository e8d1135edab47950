"""The records' catalog (harness/results/catalog.py), typed records, the O(1) resume lookup and the job path
(harness/jobs.py) driven without Hydra."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import harness.results.catalog as catalog_module
from harness.errors import ConfigError
from harness.jobs import JobPlace, JobSteps, run_job, settle_records
from harness.results import RunRecord, load, write_record
from harness.results.catalog import CATALOG_DIR, Catalog
from harness.results.claims import Claim, try_claim
from harness.results.index import INDEX_DIR, RECONCILED, find_completed, rebuild_index
from harness.results.validate import type_problem
from harness.scaling.runs import read_runs
from harness.settings import RunSettings
from harness.sweep import failure_report, jobs_without_record
from harness.training.threads import resolve_cpu_threads, scheduler_cpus


def _record(run_id: str, digest: str = "h", **fields: Any) -> RunRecord:
    base = {"status": "completed", "config_hash": digest, "model": "mlp", "data": "digits", "n_train": 100}
    return RunRecord(run_id=run_id, **{"config": {"model": {"width": 8}}, **base, **fields})


def _write_bad(run_dir: Path, **fields) -> Path:
    """A record as a hand edit or a foreign tool leaves it: `fields` override a valid one's values."""
    data = {**_record("bad").to_dict(), **fields}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(data))
    return run_dir / "run.json"


def test_the_catalog_reads_only_new_and_changed_records(tmp_path):
    for i in range(5):
        write_record(tmp_path / f"r{i}", _record(f"r{i}", f"h{i}", test_error=0.1 * i))
    catalog = Catalog(tmp_path)
    assert len(catalog.frame()) == 5 and catalog.read_records == 5
    assert (tmp_path / CATALOG_DIR).is_dir(), "persisted beside the records"
    again = Catalog(tmp_path)
    frame = again.frame()
    assert again.read_records == 0, "nothing new: no record opened"
    assert sorted(frame["test_error"]) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    write_record(tmp_path / "r5", _record("r5", "h5"))
    write_record(tmp_path / "r1", _record("r1", "h1", test_error=0.9))  # rewritten: a new mtime or size
    os.utime(tmp_path / "r1" / "run.json", ns=(1, 1))
    (tmp_path / "r2" / "run.json").unlink()
    third = Catalog(tmp_path)
    frame = third.frame()
    assert third.read_records == 2, "the new record and the rewritten one, nothing else"
    assert sorted(frame["run_id"]) == ["r0", "r1", "r3", "r4", "r5"]
    assert frame.set_index("run_id").loc["r1", "test_error"] == 0.9
    assert len(list((tmp_path / CATALOG_DIR).glob("part-*.parquet"))) == 1, "stale rows merged away"


def test_the_catalog_keeps_types_that_mix_and_matches_a_fresh_read(tmp_path):
    write_record(tmp_path / "a", _record("a", config={"model": {"width": 8}, "tags": {"note": 3}}))
    write_record(tmp_path / "b", _record("b", config={"model": {"width": 16}, "tags": {"note": "text"}}))
    first = load(tmp_path).set_index("run_id")
    cached = load(tmp_path).set_index("run_id")  # from the catalog now
    assert cached.loc["a", "config.tags.note"] == 3 and cached.loc["b", "config.tags.note"] == "text"
    assert cached.loc["a", "run_dir"] == str(tmp_path / "a")
    pd.testing.assert_frame_equal(first.sort_index(axis=1), cached.sort_index(axis=1), check_dtype=False)


def _varied_tree(root: Path, count: int = 12) -> None:
    """Records as sweeps leave them: repeated text (model, status), unique ids, a list, nested config keys."""
    for i in range(count):
        model = "mlp" if i % 2 else "cnn"
        config = {"model": {"width": 8 * (1 + i % 3), "name": model}, "seed": i}
        write_record(
            root / f"s{i // 4}" / f"{i}_job",
            _record(
                f"r{i:02d}",
                f"h{i}",
                model=model,
                test_error=0.1 + i / 100,
                status="failed" if i == 5 else "completed",
                input_shape=[1, 8, 8],
                config=config,
                started_at="2026-01-02T03:04:05+00:00",
            ),
        )


def test_batches_parsed_by_arrow_match_records_read_one_by_one(tmp_path, monkeypatch):
    _varied_tree(tmp_path)
    parsed = []
    parse = catalog_module._parse_together

    def spy(*args):
        parsed.append(parse(*args))
        return parsed[-1]

    monkeypatch.setattr(catalog_module, "_parse_together", spy)
    together = Catalog(tmp_path, persist=False).frame()
    assert parsed and all(table is not None for table in parsed), "the batch was parsed together"
    assert together["started_at"].iloc[0] == "2026-01-02T03:04:05+00:00", "text that looks like a time"
    assert together["input_shape"].iloc[0] == [1, 8, 8]
    monkeypatch.setattr(catalog_module, "_parse_together", lambda *args: None)
    one_by_one = Catalog(tmp_path, persist=False).frame()
    pd.testing.assert_frame_equal(together, one_by_one)


def test_a_bad_record_in_a_batch_is_named_and_the_rest_read(tmp_path):
    _varied_tree(tmp_path)
    bad = _write_bad(tmp_path / "s9" / "bad", test_error="0.1")
    write_record(tmp_path / "s9" / "date", _record("dated", config={"tags": {"day": "2026-01-02"}}))
    with pytest.warns(UserWarning, match=str(bad)):
        frame = load(tmp_path)
    assert len(frame) == 13 and "bad" not in set(frame["run_id"])
    assert frame.set_index("run_id").loc["dated", "config.tags.day"] == "2026-01-02"


def test_loaded_text_columns_compare_group_and_sort_as_text(tmp_path):
    _varied_tree(tmp_path)
    load(tmp_path)
    write_record(tmp_path / "late", _record("r99", "h99", model="zeta", test_error=0.5))  # a second part
    frame = load(tmp_path)
    assert isinstance(frame["model"].dtype, pd.CategoricalDtype), "repeated text: one code per cell"
    assert not isinstance(frame["run_id"].dtype, pd.CategoricalDtype), "unique text stays text"
    assert list(frame["model"].cat.categories) == ["cnn", "mlp", "zeta"], "sorted, across parts"
    assert (frame["model"] == "mlp").sum() == 6 and frame["model"].isin(["zeta"]).sum() == 1
    assert (frame["status"] == "completed").sum() == 12
    assert frame.groupby("model")["test_error"].count().to_dict() == {"cnn": 6, "mlp": 6, "zeta": 1}
    assert list(frame.sort_values(["model", "run_id"])["model"].iloc[[0, 6, 12]]) == ["cnn", "mlp", "zeta"]
    assert frame["model"].astype(str).str.upper().iloc[-1] == "ZETA"
    assert frame["error"].isna().all() and frame["error"].dtype == object, "a field no run filled: None"


def test_loaded_dtypes_do_not_depend_on_how_many_runs_share_a_value(tmp_path):
    # Categories were chosen by the data (distinct values against rows): one run's `model` loaded as text,
    # two runs' as a category, so code that worked on one results folder failed on the next.
    one, three = tmp_path / "one", tmp_path / "three"
    write_record(one / "a", _record("r0", "h0"))
    for index, model in enumerate(("mlp", "cnn", "resnet")):
        write_record(three / f"r{index}", _record(f"r{index}", f"h{index}", model=model))
    for frame in (load(one), load(three)):
        assert isinstance(frame["model"].dtype, pd.CategoricalDtype)
        assert not isinstance(frame["run_id"].dtype, pd.CategoricalDtype)
        assert not isinstance(frame["config_hash"].dtype, pd.CategoricalDtype)


def test_a_wide_loaded_frame_takes_new_columns_without_a_fragmentation_warning(tmp_path):
    """pandas warns on every insert into a frame of over 100 numpy blocks: a record of 400 config keys of
    alternating types (each type change a block boundary) still loads into fewer."""
    keys = {f"k{i:03d}": (i * 0.5 if i % 3 == 0 else i if i % 3 == 1 else i % 2 == 0) for i in range(400)}
    for i in range(3):
        write_record(tmp_path / f"r{i}", _record(f"r{i}", f"h{i}", config={"tags": keys}))
    for _ in range(2):  # built from the records, then read from the catalog
        frame = load(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.PerformanceWarning)
            frame["added"] = 1
            frame.assign(more=2)
    assert frame["config.tags.k003"].tolist() == [1.5] * 3 and frame["config.tags.k004"].tolist() == [4] * 3


def test_a_catalog_that_cannot_be_written_is_built_in_memory(tmp_path, monkeypatch):
    write_record(tmp_path / "a", _record("a"))

    def full_disk(rows, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("harness.results.catalog._write_part", full_disk)
    assert list(load(tmp_path)["run_id"]) == ["a"]
    assert not list((tmp_path / CATALOG_DIR).glob("*")), "no part, no temporary file left"


def test_type_check_follows_the_schema():
    good = _record("a", test_error=0.1, steps=3, contended=False, input_shape=[1, 2]).to_dict()
    assert type_problem(good) is None
    assert type_problem({**good, "test_error": 1}) is None, "an integer is a number"
    assert "field test_error is str '0.1', not float" in type_problem({**good, "test_error": "0.1"})
    assert "field ensemble_size is str" in type_problem({**good, "ensemble_size": "2"})
    assert "field steps is bool" in type_problem({**good, "steps": True})
    assert "JSON object, not list" in type_problem([1])


def test_a_bad_typed_record_is_named_and_skipped_by_load_fit_and_resume(tmp_path, caplog):
    write_record(tmp_path / "good", _record("good", "h1", test_error=0.2, network_operations=1e9))
    bad = _write_bad(tmp_path / "bad", test_error="0.1", config_hash="h2", ensemble_size="2")
    with pytest.warns(UserWarning, match=f"skipping unreadable run record {bad}: .*field test_error is str"):
        assert list(load(tmp_path)["run_id"]) == ["good"]
    with pytest.warns(UserWarning, match=str(bad)):
        assert list(load(tmp_path)["run_id"]) == ["good"], "named again from the catalog, without a re-read"
    with pytest.warns(UserWarning, match=str(bad)):
        assert list(read_runs(tmp_path)["run_id"]) == ["good"], "harness fit's reader"
    with caplog.at_level(logging.WARNING, logger="harness.results.index"):
        assert find_completed(tmp_path, "h2") is None, "resume: not a completed run, and no crash"
        assert rebuild_index(tmp_path) == 1, "collect --reindex: no crash"
    assert str(bad) in caplog.text


def test_collect_names_and_skips_a_bad_typed_record(harness_cli, tmp_path):
    write_record(tmp_path / "runs" / "good", _record("good"))
    bad = _write_bad(tmp_path / "runs" / "bad", test_error="0.1")
    proc = harness_cli("collect", str(tmp_path / "runs"), "--reindex")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: skipping unreadable run record {bad}: field test_error is str" in proc.stderr
    assert "1 runs {'completed': 1}" in proc.stdout and "1 completed jobs marked" in proc.stdout


def test_a_new_configuration_is_decided_without_reading_the_tree(tmp_path, monkeypatch):
    write_record(tmp_path / "a", _record("a", "h1"))
    assert find_completed(tmp_path, "h1") == tmp_path / "a", "no index: reconciled from the records"
    assert (tmp_path / INDEX_DIR / RECONCILED).is_file()

    def no_scan(*args, **kwargs):
        raise AssertionError("a new configuration's lookup read the tree")

    monkeypatch.setattr("harness.results.index.catalog_frame", no_scan)
    assert find_completed(tmp_path, "new") is None
    assert find_completed(tmp_path, "h1") == tmp_path / "a", "a marked one: its marker and record"


def test_a_deleted_index_or_a_copied_in_tree_is_found(tmp_path):
    write_record(tmp_path / "a", _record("a", "h1"))
    assert find_completed(tmp_path, "h1") is not None
    shutil.rmtree(tmp_path / INDEX_DIR)
    assert find_completed(tmp_path, "h1") == tmp_path / "a", "deleted index: rebuilt"
    write_record(tmp_path / "copied" / "b", _record("b", "h2"))  # a tree copied in: found at reconciling
    assert rebuild_index(tmp_path) == 2
    assert find_completed(tmp_path, "h2") == tmp_path / "copied" / "b"


def test_an_interrupted_ensemble_keeps_no_half_completed_job(tmp_path):
    job = tmp_path / "job"
    member: dict[str, Any] = dict(ensemble_size=2, config_hash="e")
    write_record(job / "seed_0", _record("m0", ensemble_index=0, **member))
    settle_records(job, tmp_path)  # member 1's record never written
    assert json.loads((job / "seed_0" / "run.json").read_text())["status"] == "interrupted"
    assert find_completed(tmp_path, "e") is None
    write_record(job / "seed_0", _record("m0", ensemble_index=0, **member))
    write_record(job / "seed_1", _record("m1", ensemble_index=1, **member))
    settle_records(job, tmp_path)  # both written, stopped before the marker: marked now
    assert json.loads((tmp_path / INDEX_DIR / "e.json").read_text())["run_dir"] == "job/seed_0"


def _place(tmp_path: Path, number: int | None = 3) -> JobPlace:
    output = tmp_path / "runs" / "multirun" / "s" / f"{number}_mlp_digits"
    output.mkdir(parents=True)
    sweep = (output.parent, number) if number is not None else None
    return JobPlace(output, tmp_path / "runs", "cafe", sweep, frozenset({".hydra"}))


def _steps(train, *, resume: bool = True) -> JobSteps:
    settings = RunSettings(resume=resume)
    return JobSteps(lambda: settings, train, lambda error: _record("f", "cafe", status="failed", error=error))


def test_a_crash_before_any_record_leaves_a_failed_one_and_the_sweep_goes_on(tmp_path, caplog):
    place = _place(tmp_path)

    def crash(settings):
        raise RuntimeError("injected")

    with caplog.at_level(logging.ERROR, logger="harness.jobs"):
        assert run_job(place, _steps(crash), fail_fast=False) == 0
    record = json.loads((place.output_dir / "run.json").read_text())
    assert (record["status"], record["error"]) == ("failed", "RuntimeError: injected")
    assert f"job 3 crashed; its record is in {place.output_dir}" in caplog.text
    assert not (tmp_path / "runs" / ".claims").exists(), "claim released"


def test_a_full_disk_is_one_line_and_the_sweep_names_the_job(tmp_path, caplog, capsys):
    def full_disk(settings):
        raise OSError(errno.ENOSPC, "No space left on device", "/results/x/run.json")

    with caplog.at_level(logging.ERROR, logger="harness.jobs"):
        assert run_job(_place(tmp_path), _steps(full_disk), fail_fast=False) == 0, "the sweep goes on"
    assert "job 3 could not write its record in /results/x/run.json (No space left on device)" in caplog.text
    assert run_job(_place(tmp_path / "alone", number=None), _steps(full_disk), fail_fast=False) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the run could not write its record in /results/x/run.json")


def test_the_sweep_end_on_a_full_disk_prints_what_completed_and_one_line(
    tmp_path, monkeypatch, caplog, capsys
):
    from omegaconf import OmegaConf

    from harness.sweep import CollectOnSweepEnd

    write_record(tmp_path / "0_mlp_digits", _record("a"))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("harness.sweep.collect", full_disk)
    monkeypatch.setattr("harness.results.summary.atomic_write_text", full_disk)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        CollectOnSweepEnd().on_multirun_end(config)
    assert stopped.value.code == 1
    assert "1 runs" in capsys.readouterr().out, "the table of what completed"
    assert (
        f"could not write the sweep's tables in {tmp_path} (the disk is full)" in caplog.records[-1].message
    )


def test_bad_input_alone_is_one_line_and_exit_2_and_leaves_nothing(tmp_path, capsys):
    place = _place(tmp_path, number=None)

    def refuse(settings):
        raise ConfigError("model.width=0 must be positive; pass a positive integer")

    assert run_job(place, _steps(refuse), fail_fast=False) == 2
    assert capsys.readouterr().err == "error: model.width=0 must be positive; pass a positive integer\n"
    assert not place.output_dir.exists()


def test_a_completed_configuration_is_skipped_and_noted(tmp_path):
    place = _place(tmp_path)
    write_record(tmp_path / "runs" / "earlier", _record("e", "cafe"))
    trained: list[RunSettings] = []

    def train(settings: RunSettings) -> list[RunRecord]:
        trained.append(settings)
        return []

    assert run_job(place, _steps(train), fail_fast=False) == 0
    assert trained == [] and not place.output_dir.exists()
    note = json.loads((place.sweep[0] / ".resumed" / "3.json").read_text())
    assert note["run_dir"] == str((tmp_path / "runs" / "earlier").resolve())


def test_taking_over_a_killed_jobs_claim_removes_what_it_left(tmp_path, caplog):
    place = _place(tmp_path)
    orphan = tmp_path / "runs" / "multirun" / "old" / "3_mlp_digits"
    (orphan / ".hydra").mkdir(parents=True)
    (orphan / ".run.json.x.tmp").write_text("{")
    dead = try_claim(place.results_dir, "cafe", stale_s=300, run_dir=orphan)
    assert isinstance(dead, Claim)
    dead._stop.set()  # a SIGKILL: the heartbeat stops, the file stays, with a pid that is gone
    claim_file = dead.path
    data = json.loads(claim_file.read_text())
    claim_file.write_text(json.dumps({**data, "pid": 2**22 + 12345}))
    trained: list[RunSettings] = []

    def train(settings: RunSettings) -> list[RunRecord]:
        trained.append(settings)
        return []

    with caplog.at_level(logging.WARNING):
        assert run_job(place, _steps(train), fail_fast=False) == 0
    assert len(trained) == 1
    assert not orphan.exists(), "the killed job's run directory, without a record, is gone"
    assert "removed" in caplog.text and str(orphan) in caplog.text


def test_jobs_without_a_record_are_failures_named_with_their_overrides(tmp_path):
    for number, overrides in [(0, "[seed=0]"), (1, "[seed=1]")]:
        (tmp_path / f"{number}_mlp_digits" / ".hydra").mkdir(parents=True)
        (tmp_path / f"{number}_mlp_digits" / ".hydra" / "overrides.yaml").write_text(overrides)
    write_record(tmp_path / "0_mlp_digits", _record("a"))
    (tmp_path / ".resumed").mkdir()
    (tmp_path / ".resumed" / "2.json").write_text("{}")
    frame = load(tmp_path)
    assert jobs_without_record(tmp_path, frame, total=4) == [1, 3]
    report = failure_report(tmp_path, frame, [1, 3])
    assert report.startswith("2 job(s) of the sweep failed: job 1 (seed=1) left no record")


def test_cpu_threads_auto_takes_the_schedulers_allocation():
    assert scheduler_cpus({"SLURM_CPUS_PER_TASK": "1", "SLURM_CPUS_ON_NODE": "2"}) == 1
    node = {"SLURM_CPUS_ON_NODE": "8", "SLURM_TASKS_PER_NODE": "2(x3),1"}
    assert scheduler_cpus({**node, "SLURM_NODEID": "1"}) == 4
    assert scheduler_cpus({**node, "SLURM_NODEID": "3"}) == 8
    assert scheduler_cpus({}) is None


def test_a_slurm_task_takes_its_allocation_not_the_nodes_cores(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_cpu_threads("auto") == (1, "auto: 1 cores allocated by SLURM / 1 job(s) at once")


def test_warnings_name_each_bad_record_once_per_read(tmp_path):
    write_record(tmp_path / "a", _record("a"))
    _write_bad(tmp_path / "b", steps="many")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(tmp_path)
    assert [str(w.message).count("field steps is str") for w in caught] == [1]
