import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from harness.results import RunRecord, load, read_record, schema_markdown, write_curve, write_record
from harness.results.store import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def _record(**fields) -> RunRecord:
    base: dict[str, Any] = dict(
        run_id="r1",
        status="completed",
        model="mlp",
        data="digits",
        seed=0,
        n_train=100,
        epochs=2.0,
        params=1234,
        test_error=0.1,
        train_time_s=1.5,
        wall_time_s=2.0,
        device_name="cpu",
        config={"model": {"name": "mlp", "width": 8}, "seed": 0},
    )
    base.update(fields)
    return RunRecord(**base)


def test_record_round_trip(tmp_path):
    record = _record(seeds={"init_and_order": 0}, input_shape=[1, 8, 8])
    path = write_record(tmp_path, record)
    assert path == tmp_path / "run.json"
    assert read_record(tmp_path) == record
    assert read_record(path).to_dict() == record.to_dict()


def test_unfilled_measurements_are_null_not_numbers(tmp_path):
    write_record(tmp_path, _record())
    stored = json.loads((tmp_path / "run.json").read_text())
    for key in ("flops_forward", "hardware_burden", "energy_total_j", "cost_usd_paper"):
        assert key in stored and stored[key] is None


def test_non_finite_values_are_stored_as_null(tmp_path):
    write_record(tmp_path, _record(status="diverged", train_loss=math.nan, test_loss=math.inf))
    stored = json.loads((tmp_path / "run.json").read_text())
    assert stored["train_loss"] is None and stored["test_loss"] is None
    assert stored["status"] == "diverged"


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    atomic_write_text(target, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"], "temporary file left behind"


def test_load_flattens_a_tree_and_skips_corrupt_records(tmp_path):
    for i, width in enumerate((8, 16, 32)):
        write_record(
            tmp_path / "sweep" / str(i),
            _record(run_id=f"r{i}", model_width=width, config={"model": {"width": width}}),
        )
    (tmp_path / "sweep" / "bad").mkdir()
    (tmp_path / "sweep" / "bad" / "run.json").write_text("{not json")
    with pytest.warns(UserWarning, match="bad/run.json"):
        frame = load(tmp_path)
    assert len(frame) == 3
    assert sorted(frame["config.model.width"]) == [8, 16, 32]
    for column in (
        "run_id",
        "status",
        "model",
        "data",
        "seed",
        "n_train",
        "epochs",
        "params",
        "test_error",
        "train_time_s",
        "wall_time_s",
        "device_name",
        "run_dir",
    ):
        assert column in frame.columns
    assert len(load(tmp_path / "sweep" / "1")) == 1


def test_load_of_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load(tmp_path / "nowhere")


def test_load_of_empty_dir_has_the_schema_columns(tmp_path):
    frame = load(tmp_path)
    assert frame.empty and "test_error" in frame.columns


def test_curve_written_as_csv(tmp_path):
    rows = [{"step": 1, "test_error": 0.5}, {"step": 2, "test_error": 0.25}]
    path = write_curve(tmp_path, rows)
    assert path.read_text().splitlines() == ["step,test_error", "1,0.5", "2,0.25"]
    assert write_curve(tmp_path / "none", []) is None


def test_results_readme_documents_every_field():
    readme = (REPO / "results" / "README.md").read_text()
    assert schema_markdown() in readme, "results/README.md is out of date: paste schema_markdown() into it"


def test_load_reads_a_collected_table(tmp_path):
    from harness.results import collect

    for i, width in enumerate((8, 16)):
        write_record(tmp_path / "sweep" / str(i), _record(run_id=f"r{i}", model_width=width))
    _, parquet, csv = collect(tmp_path / "sweep")
    for table in (parquet, csv):
        frame = load(table)
        assert sorted(frame["model_width"]) == [8, 16] and "run_dir" in frame.columns
        assert list(load(table, columns=["run_id"]).columns) == ["run_id"]
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    parquet.rename(shipped / "runs.parquet")
    assert sorted(load(shipped)["model_width"]) == [8, 16], "a folder with only its table"


def test_load_skips_a_record_that_is_not_an_object_with_a_warning(tmp_path):
    write_record(tmp_path / "good", RunRecord(run_id="good", status="completed"))
    for name, text in (("null", "null"), ("list", "[1, 2]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(text)
    with pytest.warns(UserWarning) as caught:
        frame = load(tmp_path)
    assert list(frame["run_id"]) == ["good"]
    warned = " ".join(str(w.message) for w in caught)
    assert "null/run.json" in warned and "list/run.json" in warned and "not NoneType" in warned


def test_load_reads_a_folder_that_holds_only_a_csv_table(tmp_path):
    write_record(tmp_path / "runs" / "a", RunRecord(run_id="a", status="completed", seed=3))
    load(tmp_path / "runs").to_csv(tmp_path / "runs.csv", index=False)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (tmp_path / "runs.csv").rename(shipped / "runs.csv")
    frame = load(shipped)
    assert list(frame["run_id"]) == ["a"] and list(frame["seed"]) == [3]


def test_records_are_written_with_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_record(tmp_path / "a", RunRecord(run_id="a"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_finding_records_passes_over_a_directory_removed_mid_walk(tmp_path, monkeypatch):
    """Another launcher removes a skipped job's run directory at any moment; a walk that meets the hole
    lists what is there instead of crashing (a concurrent sweep's job once did, with FileNotFoundError)."""
    import shutil

    from harness.results.store import find_records

    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    real_scandir = os.scandir

    def scandir_after_removal(path="."):
        if not isinstance(path, int) and Path(path).name == "b":  # (rmtree itself scans by descriptor)
            shutil.rmtree(path)  # gone between being listed and being read
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_after_removal)
    assert [p.parent.name for p in find_records(tmp_path)] == ["a", "c"]
