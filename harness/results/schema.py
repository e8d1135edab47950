"""The run record: one JSON object per run, its fields typed and documented here and in its parts
(harness/record_parts.py), and only there.

`results/README.md` carries the same table (`schema_markdown()` renders it; a test keeps the two equal).
Fields that a measurement has not filled stay null: never a placeholder number.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.record_parts import (
    ComputeFields,
    ContentionFields,
    CostFields,
    EnergyFields,
    ProvenanceFields,
    RecordPart,
)
from harness.record_parts import documented as _f
from harness.record_parts import documented_dict as _dict

SCHEMA_VERSION = 1
STATUSES = ("completed", "diverged", "failed", "interrupted")

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "ComputeFields",
    "ContentionFields",
    "CostFields",
    "EnergyFields",
    "ProvenanceFields",
    "RecordPart",
    "RunHead",
    "RunRecord",
    "schema_markdown",
]


@dataclass
class RunHead:
    """What a run is and how it went: identity, outcome, what was trained on what, and its clock."""

    # identity and outcome
    run_id: str = _f("unique id: UTC start time + random suffix")
    status: str = _f("completed | diverged | failed | interrupted")
    error: str | None = _f("why the run did not complete (null when completed)")
    schema_version: int = _f("version of this schema", SCHEMA_VERSION)
    started_at: str | None = _f("UTC start time, ISO 8601")
    config_hash: str | None = _f("digest of the result-relevant config (resume skips completed hashes)")
    # what was trained, on what
    model: str | None = _f("registered model name")
    model_width: int | None = _f("model.width")
    model_depth: int | None = _f("model.depth")
    params: int | None = _f("trainable parameters", unit="count")
    data: str | None = _f("dataset name")
    data_source: str | None = _f(
        "where the data was actually read (a directory: data.root's, or a fallback such as Debian's copy) "
        "or the call that generated it"
    )
    data_fraction: float | None = _f("data.fraction requested")
    n_train: int | None = _f("training samples actually used", unit="samples")
    n_train_full: int | None = _f("training-set size before subsampling", unit="samples")
    n_test: int | None = _f("test samples", unit="samples")
    n_val: int | None = _f(
        "validation samples, held out of the training pool before subsampling (data.val_fraction); "
        "null or 0 when there is no validation split",
        unit="samples",
    )
    input_shape: list[int] | None = _f("shape of one input sample")
    num_classes: int | None = _f("number of classes (1 output for regression)")
    task: str | None = _f("classification | regression")
    seed: int | None = _f("the run's seed")
    seeds: dict[str, int] = _dict("every seed used: init/data order, subsample, dataset generator")
    # how it was trained
    epochs: float | None = _f("epochs requested", unit="epochs")
    epochs_completed: float | None = _f("epochs actually trained (steps × batch / n_train)", unit="epochs")
    steps: int | None = _f("optimizer steps taken (timing warm-up excluded)", unit="steps")
    samples_seen: int | None = _f("training samples processed", unit="samples")
    tokens_seen: int | None = _f(
        "tokens in the training samples processed (language models via harness.track and its callbacks; "
        "padding included)",
        unit="tokens",
    )
    batch_size: int | None = _f("trainer.batch_size", unit="samples")
    trainer_mode: str | None = _f("trainer.mode: how the steps were run (eager, ...)")
    trainer_fallback: str | None = _f(
        "why the run could not train as trainer.mode asked and what ran instead (graph → eager on a CPU); "
        "trainer_mode then names what ran; null when it ran as asked"
    )
    cuda_graph: bool | None = _f("the training steps were replayed from a captured CUDA graph")
    ensemble_size: int | None = _f(
        "models trained together in one vmapped step (trainer.mode=ensemble), each its own record; "
        "its times, energy and hardware burden are the ensemble's divided by ensemble_size",
        unit="count",
    )
    ensemble_index: int | None = _f("this member's place in its ensemble (seed = first seed + index)")
    precision: str | None = _f("fp32 | bf16 | fp16")
    device: str | None = _f("torch device used: cpu, cuda, cuda:N")
    device_name: str | None = _f("GPU model, or CPU model for device cpu")
    device_count: int | None = _f("devices used by the run", unit="count")
    cpu_threads: int | None = _f("torch intra- and inter-op threads (trainer.cpu_threads)", unit="count")
    cpu_threads_policy: str | None = _f("how cpu_threads was chosen: trainer.cpu_threads, or auto's reasons")
    # time (one monotonic clock, device synchronized before each reading)
    train_time_s: float | None = _f("training time: warm-up and evaluation excluded", unit="s")
    eval_time_s: float | None = _f("test-set evaluation time", unit="s")
    warmup_time_s: float | None = _f("untimed warm-up steps (compile, autotune), undone afterwards", unit="s")
    wall_time_s: float | None = _f("whole run, data loading to record", unit="s")


# The record is its head, the typed parts of harness/record_parts.py (which `harness train` and
# `harness.track` fill through one builder, harness/recording.py, so a field cannot exist in one path and not
# the other), then its results. A dataclass orders inherited fields from the last base to the first, then its
# own: head, contention, compute, energy, cost, provenance, results, config.
@dataclass
class RunRecord(ProvenanceFields, CostFields, EnergyFields, ComputeFields, ContentionFields, RunHead):
    """One run's record: the parts above, then its results and its config."""

    # results
    error_metric: str | None = _f("what test_error measures: classification_error (1 − accuracy) | rmse")
    test_error: float | None = _f("final test error, as error_metric says", unit="error_metric")
    best_test_error: float | None = _f("lowest test error over the evaluations", unit="error_metric")
    test_loss: float | None = _f("final test loss: cross-entropy (nats), or MSE for regression")
    val_error: float | None = _f(
        "final validation error, as error_metric says: what tuning selects on (never test_error)",
        unit="error_metric",
    )
    val_loss: float | None = _f("final validation loss, as test_loss")
    chance_error: float | None = _f(
        "test error of predicting the most frequent training class (regression: the training targets' "
        "mean): what a model that learned nothing scores",
        unit="error_metric",
    )
    collapsed: bool | None = _f(
        "the run completed but learned nothing usable: test_error within 1% (relative) of chance_error "
        "or worse; warned about, and left out of fits unless collapsed=keep"
    )
    train_loss: float | None = _f("mean training loss since the previous evaluation, at the end", unit="nats")
    target_error: float | None = _f("trainer.target_error", unit="fraction")
    time_to_target_s: float | None = _f("train time when test error first reached target_error", unit="s")
    steps_to_target: int | None = _f("steps when test error first reached target_error", unit="steps")
    metrics: dict[str, float] = _dict(
        "the last value of each other metric a loop logged (harness.track's run.log, a callback's metric)"
    )
    config: dict[str, Any] = _dict("the resolved Hydra config of the run")

    def fill(self, *parts: RecordPart) -> RunRecord:
        """Set every field of each part on this record (every part's field is a record field)."""
        for part in parts:
            for f in dataclasses.fields(part):
                setattr(self, f.name, getattr(part, f.name))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Build from a stored record; keys of a newer schema are ignored, missing ones are null."""
        if not isinstance(data, dict):
            raise TypeError(f"a run record is a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def schema_markdown() -> str:
    """The record's fields as a Markdown table, as printed in results/README.md."""
    rows = ["| field | unit | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(RunRecord):
        # A bare | would split the Markdown cell.
        doc = f.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | {f.metadata['unit']} | {doc} |")
    return "\n".join(rows)
