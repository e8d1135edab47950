"""The loop's arithmetic and guarantees, on tiny CPU runs."""

import math

import pytest
import torch

from harness.energy import EnergyMeter
from harness.errors import ConfigError
from harness.train import run
from harness.training.loop import plan_steps
from harness.training.schedule import lr_factor


def test_plan_steps_rounds_fractional_epochs_up():
    assert plan_steps(100, 32, 1.0, None) == (4, 4)
    assert plan_steps(100, 32, 2.5, None) == (4, 10)
    assert plan_steps(100, 32, 0.3, None) == (4, 2)
    assert plan_steps(10, 64, 3, None) == (1, 3), "batch larger than the set: one full-set batch per epoch"
    assert plan_steps(100, 32, 10, 7) == (4, 7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((100, 0, 1.0, None), "batch_size"),
        ((100, 8, 0.0, None), "epochs"),
        ((100, 8, 1.0, 0), "max_steps"),
    ],
)
def test_plan_steps_rejects_bad_values(args, message):
    with pytest.raises(ConfigError, match=message):
        plan_steps(*args)


def test_lr_schedules():
    cosine = lr_factor("cosine", 100)
    assert cosine(0) == 1.0 and math.isclose(cosine(50), 0.5) and cosine(100) == pytest.approx(0.0)
    linear = lr_factor("linear", 10, warmup_fraction=0.2)
    assert [linear(s) for s in (0, 1)] == [0.5, 1.0]
    assert linear(2) == 1.0 and linear(6) == pytest.approx(0.5)
    assert lr_factor("constant", 10)(9) == 1.0
    with pytest.raises(ConfigError, match="schedule.name=step"):
        lr_factor("step", 10)


def test_timing_warmup_is_undone(compose_train, tmp_path):
    """Warm-up steps are real steps, then rolled back: the trained weights match a run without them."""
    common = ("trainer.epochs=1", "model.width=16", "data.fraction=0.2", "measure.learning_curve=false")
    a = run(compose_train(*common, "trainer.timing_warmup_steps=0"), tmp_path / "a")
    b = run(compose_train(*common, "trainer.timing_warmup_steps=3"), tmp_path / "b")
    assert a.train_loss == b.train_loss and a.test_error == b.test_error
    assert b.warmup_time_s > 0


def test_same_seed_same_result_other_seed_other_result(compose_train, tmp_path):
    common = ("trainer.epochs=1", "model.width=16", "data.fraction=0.3")
    first = run(compose_train(*common, "seed=3"), tmp_path / "1")
    again = run(compose_train(*common, "seed=3"), tmp_path / "2")
    other = run(compose_train(*common, "seed=4"), tmp_path / "3")
    assert first.train_loss == again.train_loss
    assert first.train_loss != other.train_loss


def test_time_accounting_and_curve(compose_train, tmp_path):
    record = run(compose_train("trainer.epochs=3", "trainer.target_error=0.9"), tmp_path)
    assert record.status == "completed"
    assert record.steps == 3 * math.ceil(record.n_train / 64)
    assert record.epochs_completed == pytest.approx(3.0)
    assert 0 < record.train_time_s < record.wall_time_s
    assert record.eval_time_s > 0
    curve = (tmp_path / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("step,epoch,samples_seen,train_loss,test_loss,test_error,train_time_s")
    assert len(curve) == 1 + 3, "one evaluation per epoch"
    assert record.steps_to_target == math.ceil(record.n_train / 64), "a 0.9 target is met at the first eval"
    assert 0 < record.time_to_target_s <= record.train_time_s


def test_eval_interval_in_steps(compose_train, tmp_path):
    run(compose_train("trainer.max_steps=10", "trainer.eval_every_steps=4"), tmp_path)
    steps = [line.split(",")[0] for line in (tmp_path / "curve.csv").read_text().splitlines()[1:]]
    assert steps == ["4", "8", "10"], "every 4 steps, and always at the end"


def test_energy_window_spans_an_evaluation_interval_not_a_chunk(compose_train, tmp_path, monkeypatch):
    # Each window edge reads NVML counters (milliseconds on a GPU): one window per loss-check chunk cost
    # 14% of a small MLP's throughput on an H100. Windows must open once per evaluation interval.
    finished: list[EnergyMeter] = []
    finish = EnergyMeter.finish

    def counted_finish(meter: EnergyMeter):
        finished.append(meter)
        return finish(meter)

    monkeypatch.setattr(EnergyMeter, "finish", counted_finish)
    overrides = ("trainer.max_steps=12", "trainer.eval_every_steps=6", "trainer.log_every_steps=2")
    record = run(compose_train(*overrides), tmp_path)
    (meter,) = finished
    assert meter.windows == 2, "12 steps, an evaluation every 6: two windows (six loss-check chunks)"
    assert record.energy_meter_s == pytest.approx(meter.edge_s) and record.energy_meter_s >= 0
    assert record.energy_meter_s < record.train_time_s


def test_divergence_is_recorded_not_raised(compose_train, tmp_path):
    record = run(
        compose_train(
            "trainer.optimizer.lr=1e12",
            "trainer.epochs=3",
            "trainer.log_every_steps=1",
            "trainer.schedule.name=constant",
        ),
        tmp_path,
    )
    assert record.status == "diverged"
    assert "non-finite" in record.error
    assert (tmp_path / "run.json").exists()
    assert record.steps < 3 * math.ceil(record.n_train / 64), "stopped early"


def test_crash_during_training_leaves_a_failed_record(compose_train, tmp_path, monkeypatch):
    import harness.train as train_module

    def explode(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module, "trainer_for", lambda mode: explode)
    with pytest.raises(RuntimeError):
        run(compose_train(), tmp_path)
    from harness.results import read_record

    record = read_record(tmp_path)
    assert record.status == "failed" and "out of memory" in record.error


def test_interrupt_leaves_an_interrupted_record(compose_train, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = torch.optim.SGD.step

    def interrupt_on_fifth(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # 1 warm-up step, then 5 timed ones
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", interrupt_on_fifth)
    # measure.flops=false: the FLOP count's own optimizer step would shift the call count.
    record = run(compose_train("trainer.epochs=2", "measure.flops=false"), tmp_path)
    assert record.status == "interrupted" and record.steps == 4
    assert (tmp_path / "run.json").exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(compose_train, tmp_path, precision):
    record = run(compose_train(f"trainer.precision={precision}", "trainer.max_steps=3"), tmp_path)
    assert record.status == "completed" and record.precision == precision
    assert record.test_error is not None


@pytest.mark.parametrize("device", [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bf16_run_on_each_device(compose_train, tmp_path, device):
    overrides = (f"trainer.device={device}", "trainer.precision=bf16", "trainer.epochs=2")
    record = run(compose_train(*overrides), tmp_path)
    assert record.status == "completed" and record.device.startswith(device) and record.precision == "bf16"


def test_a_collapsed_run_is_flagged_and_warned_about(compose_train, tmp_path, caplog):
    # Digits' MLP at lr 3 completes with finite losses but predicts one class: chance, not a model.
    collapsed = run(compose_train("trainer.optimizer.lr=3", "trainer.epochs=2"), tmp_path / "bad")
    assert collapsed.status == "completed" and collapsed.collapsed is True
    assert collapsed.test_error >= 0.99 * collapsed.chance_error
    assert collapsed.chance_error == pytest.approx(0.9, abs=0.01), "the majority class of 10 balanced ones"
    assert any(
        "collapsed run" in r.getMessage() and "no better than chance" in r.getMessage()
        for r in caplog.records
    )
    trained = run(compose_train("trainer.epochs=2"), tmp_path / "good")
    assert trained.collapsed is False and trained.test_error < 0.5 * trained.chance_error


def test_trainer_recurrent_trains_a_gru(compose_train, tmp_path):
    # Digits read row by row (8 steps of 8 pixels); Adam at 0.01 (trainer=recurrent) learns in a few epochs.
    cfg = compose_train("model=gru", "trainer=recurrent", "model.width=16", "trainer.epochs=3")
    assert cfg.trainer.optimizer._target_ == "torch.optim.Adam" and cfg.trainer.optimizer.lr == 0.01
    record = run(cfg, tmp_path)
    assert record.status == "completed" and record.collapsed is False
    assert record.test_error < 0.5 * record.chance_error and record.flops_forward > 0
