"""Trainer modes: selection and validation, graph fallback, ensembles ≡ separate eager runs, their records.

CPU tests are tiny (digits, an epoch or two). The GPU tests run their bodies on the CPU too; what only CUDA
can show (capture, its whole batches, a failed capture) is asserted under the gpu marker.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
from typing import Any

import pytest
import torch

from harness.errors import ConfigError
from harness.results import load, read_record
from harness.results.index import find_completed
from harness.results.schema import EnergyFields
from harness.settings import DataSettings, TrainerSettings
from harness.train import run, run_all
from harness.training.ensemble import ENERGY_SHARE_TAG, share_energy
from harness.training.loop import plan_steps, shuffled_batches
from harness.training.spec import TrainingJob

TINY = ("model.width=16", "trainer.epochs=1", "data.n_train=320", "measure.learning_curve=false")
# Whole batches only (1437 digits training samples do not split into 64s), so eager and ensemble see
# the same batches; BatchNorm (cnn) and per-member clipping included.
SAME_BATCHES = (
    "trainer.drop_last=true",
    "trainer.epochs=2",
    "trainer.grad_clip_norm=1.0",
    "data.n_train=320",
    "data.subsample_seed=0",
)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("trainer.mode=turbo",), "trainer.mode must be one of eager, .*got 'turbo'"),
        (("trainer.ensemble_size=4",), "trainer.ensemble_size=4 needs trainer.mode=ensemble"),
        (("trainer.mode=ensemble", "trainer.ensemble_size=0"), "ensemble_size must be a positive integer"),
        (
            ("trainer.mode=graph", "trainer.compile=true"),
            "trainer.compile=true works with trainer.mode=eager",
        ),
        (("trainer.mode=ensemble", "trainer.precision=fp16"), "cannot use precision=fp16"),
        (
            ("trainer.mode=ensemble", "trainer.ensemble_data_order=mixed"),
            "ensemble_data_order must be one of",
        ),
        (("trainer.drop_last=sometimes",), "trainer.drop_last must be true or false or null"),
        (
            (
                "trainer.mode=ensemble",
                "trainer.optimizer._target_=torch.optim.LBFGS",
                "~trainer.optimizer.momentum",
                "~trainer.optimizer.nesterov",
                "~trainer.optimizer.weight_decay",
            ),
            "needs an element-wise optimizer",
        ),
    ],
)
def test_bad_mode_settings_are_one_line_errors_and_write_nothing(compose_train, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        run_all(compose_train(*TINY, *overrides), tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_run_refuses_an_ensemble_and_points_to_run_all(compose_train, tmp_path):
    with pytest.raises(ConfigError, match="run_all"):
        run(compose_train("trainer.mode=ensemble", "trainer.ensemble_size=2"), tmp_path)


def test_cli_rejects_ensemble_size_without_ensemble_mode(harness_cli, tmp_path):
    proc = harness_cli("train", "trainer.ensemble_size=3", "trainer.epochs=1")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "trainer.mode=ensemble" in errors[0]
    assert not list(tmp_path.rglob("run.json"))


def test_compile_keeps_shapes_static_unless_told_otherwise():
    # A compiled model would recompile on the smaller last batch, inside timed training.
    assert TrainerSettings(drop_last=None).drop_last_for(static_shapes=True)
    assert not TrainerSettings(drop_last=False).drop_last_for(static_shapes=True)


def test_plan_steps_with_drop_last():
    assert plan_steps(100, 32, 1.0, None, drop_last=True) == (3, 3)
    assert plan_steps(100, 32, 2.5, None, drop_last=True) == (3, 8)
    assert plan_steps(10, 64, 3, None, drop_last=True) == (1, 3), "batch larger than the set: the whole set"


def test_ensemble_batches_are_each_seeds_own_sequence():
    device = torch.device("cpu")
    stacked = list(itertools.islice(shuffled_batches(10, 4, [3, 4], device, drop_last=True), 5))
    alone = [list(itertools.islice(shuffled_batches(10, 4, s, device, drop_last=True), 5)) for s in (3, 4)]
    assert all(b.shape == (2, 4) for b in stacked), "drop_last: only whole batches"
    for row, seed_batches in enumerate(alone):
        assert all(torch.equal(s[row], a) for s, a in zip(stacked, seed_batches, strict=True))


def test_graph_mode_on_cpu_warns_once_and_trains_eagerly(compose_train, tmp_path, caplog, quiet_machine):
    eager = run(compose_train(*TINY), tmp_path / "eager")
    with caplog.at_level(logging.WARNING):
        graph = run(compose_train(*TINY, "trainer.mode=graph"), tmp_path / "graph")
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [
        "trainer.mode=graph ran as eager: CUDA graphs need a CUDA device, and this run trains on cpu"
    ]
    assert graph.status == "completed" and graph.trainer_mode == "eager" and graph.cuda_graph is False
    assert "CUDA device" in graph.trainer_fallback and eager.trainer_fallback is None
    assert graph.train_loss == eager.train_loss and graph.test_error == eager.test_error, "the same eager run"
    assert graph.config["trainer"]["mode"] == "graph", "the request stays in the config"


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_ensemble_equals_separate_eager_runs(compose_train, tmp_path, model):
    common = (f"model={model}", "model.width=8", "model.depth=2", "measure.flops=false", *SAME_BATCHES)
    members = run_all(
        compose_train(*common, "trainer.mode=ensemble", "trainer.ensemble_size=3"), tmp_path / "e"
    )
    for seed, member in enumerate(members):
        alone = run(compose_train(*common, f"seed={seed}"), tmp_path / f"s{seed}")
        assert member.seed == seed and member.steps == alone.steps
        assert member.samples_seen == alone.samples_seen == member.steps * 64
        assert member.test_error == pytest.approx(alone.test_error, abs=1e-9)
        assert member.train_loss == pytest.approx(alone.train_loss, rel=1e-4)
        assert member.test_loss == pytest.approx(alone.test_loss, rel=1e-4)
    assert len({m.test_loss for m in members}) == 3, "the members differ"


def test_ensemble_trains_the_member_modules_like_eager(compose_train):
    """Weights, not just metrics: the modules given to train_ensemble end where eager training leaves them."""
    from harness.building import build_model_from_config
    from harness.data import load_dataset
    from harness.train import seed_everything
    from harness.training.ensemble import train_ensemble
    from harness.training.loop import train

    cfg = compose_train(
        "model.width=8", "trainer.drop_last=true", "trainer.epochs=1", "trainer.optimizer.lr=0.1"
    )
    data = load_dataset(DataSettings.from_config(cfg.data))
    cpu = torch.device("cpu")

    def build(seed):
        seed_everything(seed)
        return build_model_from_config(cfg.model, data.input_shape, data.num_classes)

    settings = TrainerSettings.from_config(cfg.trainer)
    models = [build(s) for s in (5, 6)]
    train_ensemble(TrainingJob(models, [5, 6], data, settings, cpu, torch.float32))
    for seed, member in zip((5, 6), models, strict=True):
        alone = build(seed)
        train(TrainingJob([alone], [seed], data, settings, cpu, torch.float32))
        for a, b in zip(alone.parameters(), member.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


ADAMW = (
    "trainer.optimizer._target_=torch.optim.AdamW",
    "~trainer.optimizer.momentum",
    "~trainer.optimizer.nesterov",
    "trainer.optimizer.lr=0.003",
    "trainer.schedule.name=linear",
    "trainer.schedule.warmup_fraction=0.2",
)


@pytest.mark.parametrize(("members", "optimizer"), [(1, ()), (1, ADAMW), (2, ())])
def test_graph_step_body_equals_eager_steps_on_cpu(compose_train, members, optimizer):
    """What a graph replays — device-side LR from the schedule table, fused optimizer, in-place reset after
    warm-up, in-graph loss sum — run eagerly (capture=False) trains exactly what eager mode trains."""
    from harness.building import build_model_from_config
    from harness.data import load_dataset
    from harness.train import seed_everything
    from harness.training.ensemble import EnsembleCore
    from harness.training.graph import GraphStepper, graph_amp
    from harness.training.loop import ModuleCore, Plan, run_steps, train

    full = compose_train("model=cnn", "model.width=8", *SAME_BATCHES, *optimizer)
    cfg, data = TrainerSettings.from_config(full.trainer), load_dataset(DataSettings.from_config(full.data))
    cpu, seeds = torch.device("cpu"), list(range(members))

    def build(seed):
        seed_everything(seed)
        return build_model_from_config(full.model, data.input_shape, data.num_classes)

    eager = []
    for seed in seeds:
        model = build(seed)
        (result,) = train(TrainingJob([model], [seed], data, cfg, cpu, torch.float32))
        eager.append((model, result))
    models = [build(seed) for seed in seeds]
    plan = Plan.make(data, cfg, cpu, drop_last=True)
    core: ModuleCore | EnsembleCore
    if members == 1:
        core = ModuleCore(
            models[0], models[0], plan.x_train, plan.y_train, plan.objective, cpu, torch.float32, graph_amp
        )
        idx = torch.arange(plan.batch_size)
    else:
        core = EnsembleCore(
            models, plan.x_train, plan.y_train, plan.objective, cpu, torch.float32, False, graph_amp
        )
        idx = torch.arange(plan.batch_size).expand(members, -1).contiguous()
    stepper = GraphStepper(core, cfg, plan.total_steps, cpu, idx, capture=False)
    order = seeds[0] if members == 1 else seeds
    job = TrainingJob(models, seeds, data, cfg, cpu, torch.float32)
    results = run_steps(stepper, shuffled_batches(plan.n, plan.batch_size, order, cpu, True), plan, job)
    if isinstance(core, EnsembleCore):
        core.write_back()
    for (alone, expected), model, result in zip(eager, models, results, strict=True):
        assert [r.lr for r in result.curve] == pytest.approx([r.lr for r in expected.curve])
        assert result.last("test_error") == pytest.approx(expected.last("test_error"))
        assert result.last("train_loss") == pytest.approx(expected.last("train_loss"), rel=1e-4)
        for a, b in zip(alone.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_ensemble_members_are_records_of_their_own(compose_train, tmp_path):
    # trainer=ensemble: the preset that runs +sweep=seeds as one job
    cfg = compose_train(
        "trainer=ensemble", *TINY, "trainer.ensemble_size=3", "seed=7", "measure.learning_curve=true"
    )
    records = run_all(cfg, tmp_path / "job")
    frame = load(tmp_path / "job").sort_values("seed")
    assert list(frame["seed"]) == [7, 8, 9] and list(frame["ensemble_index"]) == [0, 1, 2]
    assert frame["run_id"].is_unique and set(frame["status"]) == {"completed"}
    assert set(frame["trainer_mode"]) == {"ensemble"} and set(frame["ensemble_size"]) == {3}
    assert [r.seeds["init_and_order"] for r in records] == [7, 8, 9]
    for record in records:
        assert (tmp_path / "job" / f"seed_{record.seed}" / "curve.csv").exists()
        assert read_record(tmp_path / "job" / f"seed_{record.seed}").run_id == record.run_id
    # One device, shared: each member is charged a third of the time; compute per member is its own.
    assert len({r.train_time_s for r in records}) == 1 and records[0].train_time_s > 0
    assert all(r.flops_train_measured == records[0].flops_train_measured for r in records)
    assert records[0].achieved_flops_per_s == pytest.approx(
        records[0].flops_train_measured / records[0].train_time_s
    )
    assert records[0].energy_method_gpu == "not_used", "nothing measured, nothing tagged"
    # One job, one resume marker: re-launching it finds it complete.
    assert find_completed(tmp_path / "runs", records[0].config_hash) == tmp_path / "job" / "seed_7"


def test_ensemble_energy_is_split_evenly_and_tagged():
    fields: dict[str, Any] = {
        "energy_gpu_j": 300.0,
        "energy_cpu_j": 30.0,
        "energy_ram_j": None,
        "energy_total_kwh": 3e-4,
        "energy_method_gpu": "nvml_counter",
        "energy_method_cpu": "rapl",
        "energy_method_ram": "disabled",
        "power_mean_w": 250.0,
    }
    member = share_energy(EnergyFields(**fields), 3)
    assert member.energy_gpu_j == 100.0 and member.energy_cpu_j == 10.0 and member.energy_ram_j is None
    assert member.energy_total_kwh == pytest.approx(1e-4)
    assert member.energy_method_gpu == f"nvml_counter+{ENERGY_SHARE_TAG}"
    assert member.energy_method_cpu == f"rapl+{ENERGY_SHARE_TAG}" and member.energy_method_ram == "disabled"
    assert member.power_mean_w == 250.0, "power is the device's, not split"


def test_diverging_ensemble_records_every_member(compose_train, tmp_path):
    cfg = compose_train(
        *TINY,
        "trainer.mode=ensemble",
        "trainer.ensemble_size=2",
        "trainer.optimizer.lr=1e12",
        "trainer.log_every_steps=1",
        "trainer.schedule.name=constant",
        "trainer.epochs=3",
    )
    records = run_all(cfg, tmp_path)
    assert [r.status for r in records] == ["diverged", "diverged"]
    assert all("non-finite" in r.error for r in records)
    assert len(list(tmp_path.rglob("run.json"))) == 2


def test_run_records_achieved_flops_and_mfu(compose_train, tmp_path):
    record = run(compose_train(*TINY), tmp_path)
    assert record.trainer_mode == "eager" and record.cuda_graph is False
    assert record.achieved_flops_per_s == pytest.approx(record.flops_train_measured / record.train_time_s)
    if record.peak_flops is not None:
        assert record.mfu == pytest.approx(record.achieved_flops_per_s / record.peak_flops)
        assert 0 < record.mfu < 1


# ------------------------------------------------------------------------------------- GPU, and the CPU
# Each test below runs its whole body on the CPU too (graph mode falls back to eager there, an ensemble runs
# as eager vmap), so a changed signature or setting breaks it in every suite; only what needs CUDA (capture
# happened, the graph's whole batches, capture failure) is asserted on the GPU alone.

ON_DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


def _on(device: str, *overrides):
    return (f"trainer.device={device}", "measure.flops=false", *overrides)


@pytest.mark.parametrize("device", ON_DEVICES)
@pytest.mark.parametrize(("model", "precision"), [("mlp", "fp32"), ("cnn", "fp32"), ("cnn", "bf16")])
def test_graph_trains_the_same_model_as_eager(compose_train, tmp_path, device, model, precision):
    """Whole batches on both sides: the same batches, the same LR schedule, so the same model (up to
    fused-optimizer and kernel rounding)."""
    common = _on(
        device,
        f"model={model}",
        "model.width=32",
        f"trainer.precision={precision}",
        "data.n_train=1280",
        "trainer.epochs=4",
        "trainer.log_every_steps=7",
    )
    eager = run(compose_train(*common), tmp_path / "eager")
    graph = run(compose_train(*common, "trainer.mode=graph"), tmp_path / "graph")
    if device == "cuda":
        assert graph.trainer_mode == "graph" and graph.cuda_graph is True and graph.trainer_fallback is None
    else:
        assert (
            graph.trainer_mode == "eager" and graph.cuda_graph is False and "CUDA" in graph.trainer_fallback
        )
    assert graph.steps == eager.steps == 80 and graph.samples_seen == eager.samples_seen
    tolerance = 0.02 if precision == "fp32" else 0.05
    assert abs(graph.test_error - eager.test_error) <= tolerance
    assert graph.train_loss == pytest.approx(eager.train_loss, rel=0.1, abs=0.01)
    # The curve's columns by name: a dataset with a validation split adds columns after lr.
    lr = [
        [float(row["lr"]) for row in csv.DictReader((tmp_path / side / "curve.csv").open())]
        for side in ("eager", "graph")
    ]
    assert lr[0] == pytest.approx(lr[1]), "the schedule under capture is eager's"


@pytest.mark.parametrize("device", ON_DEVICES)
def test_graph_default_drops_the_last_batch_and_stays_within_seed_noise(compose_train, tmp_path, device):
    common = _on(device, "trainer.epochs=8")
    graph = run(compose_train(*common, "trainer.mode=graph"), tmp_path / "graph")
    eager = run(compose_train(*common), tmp_path / "eager")
    if device == "cuda":  # the fallback trains as eager mode does, last batch included
        assert graph.cuda_graph is True
        assert graph.samples_seen == graph.steps * 64 == 8 * (graph.n_train // 64) * 64, (
            "honest: whole batches"
        )
    assert abs(graph.test_error - eager.test_error) <= 0.03


@pytest.mark.parametrize("device", ON_DEVICES)
def test_graph_with_adam_and_clipping(compose_train, tmp_path, device):
    common = _on(
        device,
        "trainer.optimizer._target_=torch.optim.AdamW",
        "~trainer.optimizer.momentum",
        "~trainer.optimizer.nesterov",
        "trainer.optimizer.lr=0.003",
        "trainer.grad_clip_norm=1.0",
        "data.n_train=1280",
        "trainer.epochs=3",
    )
    eager = run(compose_train(*common), tmp_path / "eager")
    graph = run(compose_train(*common, "trainer.mode=graph"), tmp_path / "graph")
    assert graph.cuda_graph is (device == "cuda")
    assert abs(graph.test_error - eager.test_error) <= 0.02


class _HostSync(torch.nn.Module):
    """A model whose forward reads a value back to the host: a CUDA graph cannot capture it."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x):
        if x.sum().item() > 1e30:  # a host sync: cannot be captured
            x = x * 0
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("device", ON_DEVICES)
def test_graph_capture_failure_falls_back_to_eager(compose_train, caplog, device):
    from harness.data import load_dataset
    from harness.training.graph import train_graph

    cfg = compose_train(*_on(device, "trainer.epochs=1"))
    data = load_dataset(DataSettings.from_config(cfg.data))
    settings = TrainerSettings.from_config(cfg.trainer)
    job = TrainingJob([_HostSync()], [0], data, settings, torch.device(device), torch.float32)
    with caplog.at_level(logging.WARNING):
        (result,) = train_graph(job)
    # On a GPU the capture itself fails; on the CPU graph mode never tries, and says why.
    why = "capture failed" if device == "cuda" else "CUDA graphs need a CUDA device"
    assert any(f"ran as eager: {why}" in r.getMessage() for r in caplog.records)
    assert result.mode == "eager" and result.status == "completed" and not result.cuda_graph
    assert result.fallback is not None and why in result.fallback


@pytest.mark.parametrize("device", ON_DEVICES)
def test_ensemble_on_gpu_is_graphed_and_equals_eager_runs(compose_train, tmp_path, device):
    # Each member and its run alone see the same data and batches: one subsample, whole batches only (the
    # ensemble drops the last batch, a static shape; so does the run alone here).
    same = ("data.subsample_seed=0", "trainer.drop_last=true")
    common = _on(device, "model=cnn", "model.width=16", "data.n_train=1280", "trainer.epochs=3", *same)
    members = run_all(
        compose_train(*common, "trainer.mode=ensemble", "trainer.ensemble_size=3"), tmp_path / "e"
    )
    assert all(m.cuda_graph is (device == "cuda") and m.trainer_mode == "ensemble" for m in members)
    for seed, member in enumerate(members):
        alone = run(compose_train(*common, f"seed={seed}"), tmp_path / f"s{seed}")
        assert abs(member.test_error - alone.test_error) <= 0.02
        assert member.train_loss == pytest.approx(alone.train_loss, rel=0.1, abs=0.01)
        assert math.isfinite(member.achieved_flops_per_s or 0.0)


def test_cli_ensemble_job_writes_every_member_and_resumes_as_one(harness_cli, tmp_path):
    args = ("train", "trainer=ensemble", "trainer.ensemble_size=2", "trainer.epochs=1", "data.n_train=320")
    first = harness_cli(*args)
    assert first.returncode == 0, first.stderr
    records = sorted(tmp_path.rglob("run.json"))
    assert [p.parent.name for p in records] == ["seed_0", "seed_1"]
    again = harness_cli(*args)
    assert again.returncode == 0 and "skipped: this config already completed" in again.stdout + again.stderr
    assert sorted(tmp_path.rglob("run.json")) == records, "nothing re-run"
