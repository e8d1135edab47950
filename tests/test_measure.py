"""`harness measure`: FLOPs, cross-check, parameters and latency of a model that is not trained."""

import json

import pytest

from harness.errors import ConfigError
from harness.measure import measure


def test_registered_model_closed_form(compose_measure):
    result = measure(
        compose_measure(
            "model=mlp", "latency.batch_sizes=[1,4]", "latency.min_time_s=0.01", "check_torch=true"
        )
    )
    macs = 64 * 128 + 128 * 128 + 128 * 10  # the default MLP on one 8×8 digits image
    assert result["macs"] == macs and result["flops"] == 2 * macs
    assert result["params"] == macs + 128 + 128 + 10
    assert result["unsupported"] == {}
    assert result["torch_ratio"] == pytest.approx(1.0)
    assert result["cpu_threads"] >= 1 and result["cpu_threads_policy"], "train's thread policy, recorded"
    assert [row["batch_size"] for row in result["latency"]] == [1, 4]
    assert all(row["latency_s"] > 0 and row["throughput_samples_per_s"] > 0 for row in result["latency"])
    assert all(row["energy_method"].startswith("not_measured") for row in result["latency"])  # no GPU
    model_row = result["modules"][0]
    assert model_row["module"] == "(model)" and model_row["share"] == pytest.approx(1.0)


def test_target_model_json_through_the_cli(harness_cli):
    proc = harness_cli(
        "measure",
        "model._target_=torchvision.models.resnet18",
        "+model.num_classes=10",
        "input_shape=[2,3,32,32]",
        "output=json",
        "latency.enabled=false",
        "check_torch=true",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert {"flops", "macs", "params", "unsupported", "torch_flops"} <= set(result)
    assert result["params"] == 11_181_642
    assert result["flops"] == 2 * result["macs"] and result["batch_size"] == 2
    assert result["unsupported"] == {}
    assert 0.99 < result["torch_flops"] / result["flops"] < 1.0, "torch omits only batch norm and pooling"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model._target_=torchvision.models.no_such_net"], "has no callable 'no_such_net'"),
        (["model._target_=torchvision.models.resnet18", "input_shape=[1,3,4]"], "does not fit torchvision"),
        (["model=mlp", "input_shape=[8]"], "batch-first shape"),
        ([], "no model chosen"),
        (["model=mlp", "energy.min_window_s=0"], "min_window_s=0.0 must be a positive"),
        (["model=mlp", "latency.max_time_s=0"], "max_time_s=0.0 must be a positive"),
    ],
)
def test_bad_input_is_a_config_error(compose_measure, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        measure(compose_measure("latency.enabled=false", *overrides))
    assert "\n" not in str(info.value)


def test_bad_input_on_the_cli_is_one_line(harness_cli):
    proc = harness_cli("measure", "model._target_=torchvision.models.no_such_net", "input_shape=[1,3,8,8]")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: model._target_=torchvision.models.no_such_net")


def test_an_unknown_output_is_refused_before_any_work(harness_cli):
    proc = harness_cli("measure", "model=mlp", "output=xml")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line == "error: output must be one of table, json, got 'xml'; pick one of those"


def test_sequence_first_rnn_uses_its_declared_batch(compose_measure):
    messages = []
    cfg = compose_measure(
        "model._target_=torch.nn.LSTM",
        "+model.input_size=32",
        "+model.hidden_size=64",
        "+model.num_layers=2",
        "input_shape=[10,2,32]",
        "latency.batch_sizes=[3]",
        "latency.min_time_s=0.01",
        "latency.warmup_iters=1",
    )
    result = measure(cfg, progress=messages.append)
    assert result["macs"] == 1_146_880 and result["batch_dim"] == 1 and result["batch_size"] == 2
    assert result["macs_per_sample"] == 1_146_880 / 2
    assert result["latency"][0]["batch_size"] == 3
    assert any("timing batch 3" in m and "[10, 3, 32]" in m for m in messages), "batch put at dim 1"
    assert any("timed passes" in m for m in messages), "the latency phase reports its rounds"


def test_bad_batch_dim(compose_measure):
    with pytest.raises(ConfigError, match="batch_dim=3 is not a dim"):
        measure(compose_measure("model=mlp", "latency.enabled=false", "input_shape=[1,64]", "batch_dim=3"))


def test_table_is_not_wrapped_when_piped_and_progress_goes_to_stderr(harness_cli):
    proc = harness_cli(
        "measure",
        "model._target_=torchvision.models.VisionTransformer",
        "+model.image_size=32",
        "+model.patch_size=16",
        "+model.num_layers=1",
        "+model.num_heads=2",
        "+model.hidden_dim=16",
        "+model.mlp_dim=32",
        "input_shape=[1,3,32,32]",
        "latency.batch_sizes=[1]",
        "latency.min_time_s=0.01",
        "latency.warmup_iters=1",
    )
    assert proc.returncode == 0, proc.stderr
    (total,) = [line for line in proc.stdout.splitlines() if line.startswith("total:")]
    assert "params" in total and len(total) > 80, "one line, not wrapped at 80 columns"
    assert "timing batch 1" in proc.stderr and "timing" not in proc.stdout


def test_torch_counts_attention_as_math_products(compose_measure):
    vit = [f"+model.{k}={v}" for k, v in dict(image_size=32, patch_size=16, num_layers=1).items()]
    vit += [f"+model.{k}={v}" for k, v in dict(num_heads=2, hidden_dim=16, mlp_dim=32).items()]
    target = "model._target_=torchvision.models.VisionTransformer"
    cfg = compose_measure(
        target, *vit, "input_shape=[2,3,32,32]", "latency.enabled=false", "check_torch=true"
    )
    result = measure(cfg)
    work = sum(result["macs_by_category"][k] for k in ("matmul", "convolution", "attention"))
    assert result["macs_by_category"]["attention"] > 0
    assert result["torch_flops"] == pytest.approx(2 * work, rel=1e-9)


def test_cross_check_is_opt_in(compose_measure):
    result = measure(compose_measure("model=mlp", "latency.enabled=false"))
    assert result["torch_flops"] is None and result["torch_ratio"] is None


def test_warm_up_and_batches_are_bounded_by_time(compose_measure):
    """Warm-up stops once it has lasted min_time_s (at least one pass); a batch size whose warm-up and timed
    pass would outlast max_time_s, at the per-sample latency measured before it, is skipped with why."""
    messages = []
    cfg = compose_measure(
        "model=mlp",
        "latency.batch_sizes=[1,1000000]",
        "latency.min_time_s=0",
        "latency.warmup_iters=5",
        "latency.max_time_s=1e-6",
    )
    result = measure(cfg, progress=messages.append)
    first, second = result["latency"]
    assert first["warmup_iterations"] == 1 and first["iterations"] == 1 and first["latency_s"] > 0
    assert second["batch_size"] == 1_000_000 and second["latency_s"] is None
    assert "over latency.max_time_s=1e-06" in second["skipped"]
    assert any("skipped" in m for m in messages), "the skip is reported as it happens"


def test_a_skipped_batch_is_one_line_of_the_table(harness_cli):
    proc = harness_cli(
        "measure",
        "model=mlp",
        "latency.batch_sizes=[1,1000000]",
        "latency.min_time_s=0.01",
        "latency.max_time_s=1e-6",
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if "batch 1000000" in line]
    assert "skipped" in line and "torch.utils.flop_counter: not run" in proc.stdout
