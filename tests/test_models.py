"""The registered architectures: shapes, gradients, parameter counts against closed forms, and the
one-line errors a user sees for a bad config."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.models import available_models, build_model, register

SHAPES = [(64,), (1, 40), (1, 8, 8), (1, 28, 28), (3, 32, 32)]
MODELS = ["cnn", "gru", "mlp", "resnet", "transformer"]  # the width × depth architectures exercised below
# Everything registered: those, plus the theory experiment's linear models and NTK-parameterized MLP
# (tests/test_theory.py).
REGISTERED = sorted([*MODELS, "linear_expert", "linear_flexible", "linear_lasso", "mlp_ntk"])
NUM_CLASSES = 7


def valid(name: str, shape: tuple[int, ...]) -> bool:
    return name != "resnet" or len(shape) == 3


VALID_CASES = [
    pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")
    for name in MODELS
    for shape in SHAPES
    if valid(name, shape)
]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_importing_models_registers_every_architecture():
    assert available_models() == REGISTERED


@pytest.mark.parametrize(("name", "shape"), VALID_CASES)
def test_forward_shape_and_finite_gradients(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, NUM_CLASSES, width=8, depth=2)
    x = torch.randn(3, *shape)
    logits = model(x)
    assert logits.shape == (3, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(3) % NUM_CLASSES).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(("name", "shape"), VALID_CASES)
def test_parameters_grow_with_width(name, shape):
    narrow = n_params(build_model(name, shape, NUM_CLASSES, width=8, depth=2))
    wide = n_params(build_model(name, shape, NUM_CLASSES, width=16, depth=2))
    assert 0 < narrow < wide


@pytest.mark.parametrize("name", MODELS)
def test_parameters_grow_with_depth(name):
    shallow = n_params(build_model(name, (3, 32, 32), NUM_CLASSES, width=8, depth=1))
    deep = n_params(build_model(name, (3, 32, 32), NUM_CLASSES, width=8, depth=3))
    assert shallow < deep


@pytest.mark.parametrize(
    ("shape", "width", "depth"), [((64,), 32, 1), ((1, 8, 8), 32, 3), ((3, 32, 32), 5, 4)]
)
def test_mlp_parameter_count_is_the_closed_form(shape, width, depth):
    features = 1
    for size in shape:
        features *= size
    k = NUM_CLASSES
    expected = (features * width + width) + (depth - 1) * (width * width + width) + (width * k + k)
    assert n_params(build_model("mlp", shape, k, width=width, depth=depth)) == expected
    linears = [
        m
        for m in build_model("mlp", shape, k, width=width, depth=depth).modules()
        if isinstance(m, nn.Linear)
    ]
    assert len(linears) == depth + 1, "depth counts hidden layers; the classifier is one more"


def resnet_cifar_params(channels_in: int, width: int, depth: int, classes: int) -> int:
    """Closed form for the small-stem ResNet: stem conv+BN, 4 stages of BasicBlocks, linear head."""

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k

    def bn(c):
        return 2 * c  # weight and bias; running stats are buffers, not parameters

    total = conv(channels_in, width, 3) + bn(width)
    c = width
    for stage in range(4):
        out = width * 2**stage
        for block in range(depth):
            total += conv(c, out, 3) + bn(out) + conv(out, out, 3) + bn(out)
            if block == 0 and (stage > 0 or c != out):
                total += conv(c, out, 1) + bn(out)  # projection shortcut
            c = out
    return total + c * classes + classes


def test_resnet18_cifar_parameter_count():
    # ResNet-18 for CIFAR-10 (3×3 stem, no max-pool): 11,173,962 parameters, the widely quoted figure.
    model = build_model("resnet", (3, 32, 32), 10, width=64, depth=2)
    assert n_params(model) == 11_173_962
    assert resnet_cifar_params(3, 64, 2, 10) == 11_173_962
    # The closed form also holds off the ResNet-18 point, so width and depth mean what they say.
    assert n_params(build_model("resnet", (1, 8, 8), 5, width=8, depth=3)) == resnet_cifar_params(1, 8, 3, 5)


def test_resnet_reuses_torchvision_basic_blocks():
    from torchvision.models.resnet import BasicBlock

    model = build_model("resnet", (3, 32, 32), 10, width=8, depth=2)
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 4 * 2


@pytest.mark.parametrize("shape", [(64,), (1, 40)])
def test_resnet_rejects_non_image_input(shape):
    with pytest.raises(ValueError) as info:
        build_model("resnet", shape, 10, width=8, depth=2)
    assert str(info.value) == (
        f"resnet needs image input (C, H, W), got shape {shape}; use model=cnn or model=mlp for this dataset"
    )


def test_cnn_picks_1d_or_2d_layers_from_the_input_shape():
    def kinds(shape):
        return {type(m) for m in build_model("cnn", shape, 10, width=8, depth=2).modules()}

    assert {nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d} <= kinds((1, 40))
    assert {nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d} <= kinds((64,))
    assert {nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d} <= kinds((1, 8, 8))
    assert nn.Conv2d not in kinds((1, 40))


def test_cnn_stops_pooling_when_the_input_is_small():
    # 8×8 halves to 4, 2, 1 after three blocks; further blocks must not pool (that would be an error).
    model = build_model("cnn", (1, 8, 8), 10, width=8, depth=6)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 6
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_transformer_tokens_and_attention(monkeypatch):
    calls = []
    real_sdpa = F.scaled_dot_product_attention

    def counting_sdpa(q, k, v, *args, **kwargs):
        calls.append(q.shape)
        return real_sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting_sdpa)
    model = build_model("transformer", (3, 32, 32), 10, width=16, depth=3, heads=2, patch_size=8)
    assert model.position.shape == (1, (32 // 8) ** 2 + 1, 16), "16 patches plus the CLS token"
    model(torch.randn(2, 3, 32, 32))
    assert calls == [(2, 2, 17, 8)] * 3, "one SDPA call per block, (batch, heads, tokens, head dim)"

    sequence = build_model("transformer", (1, 40), 10, width=16, depth=1, patch_size=5)
    assert (
        isinstance(sequence.embed, nn.Conv1d) and sequence.get_parameter("position").shape[1] == 40 // 5 + 1
    )


def test_transformer_options_change_the_model():
    base = n_params(build_model("transformer", (1, 28, 28), 10, width=16, depth=1))
    wider_mlp = n_params(build_model("transformer", (1, 28, 28), 10, width=16, depth=1, mlp_ratio=4))
    # Each extra unit of mlp_ratio adds width² weights in each of the MLP's two linears, plus width biases.
    assert wider_mlp - base == 2 * (2 * 16 * 16 + 16)


def test_transformer_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"model\.heads=4 must divide model\.width=10") as info:
        build_model("transformer", (1, 28, 28), 10, width=10, depth=1, heads=4)
    assert "model.width=12" in str(info.value) and "model.heads=2" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("shape", "patch", "fix"), [((1, 28, 28), 3, 2), ((1, 40), 6, 5), ((30,), 4, 3)])
def test_transformer_rejects_patch_size_that_does_not_divide(shape, patch, fix):
    with pytest.raises(ValueError, match=rf"model\.patch_size={patch} does not divide") as info:
        build_model("transformer", shape, 10, width=16, depth=1, patch_size=patch)
    assert f"model.patch_size={fix}" in str(info.value)
    assert all(size % fix == 0 for size in shape[1:] or shape)
    build_model("transformer", shape, 10, width=16, depth=1, patch_size=fix)  # the suggested fix works


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("key", "value"), [("width", 0), ("depth", 0), ("width", -3), ("depth", 1.5)])
def test_width_and_depth_must_be_positive_integers(name, key, value):
    kwargs = {"width": 8, "depth": 2, key: value}
    with pytest.raises(ValueError) as info:
        build_model(name, (3, 32, 32), 10, **kwargs)
    example = 64 if key == "width" else 2
    assert (
        str(info.value)
        == f"model.{key} must be a positive integer, got {value!r}; set e.g. model.{key}={example}"
    )


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        build_model("foo", (1, 8, 8), 10, width=8, depth=2)
    assert str(info.value) == f"unknown model 'foo'; choose one of: {', '.join(REGISTERED)}"


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        build_model("mlp", (64,), 10, width=8, depth=2, patch_size=4)


def test_register_refuses_a_second_class_under_a_taken_name():
    with pytest.raises(ValueError, match="registered twice"):

        @register("mlp")
        class Impostor(nn.Module):
            pass

    assert available_models() == REGISTERED
    assert type(build_model("mlp", (4,), 2, width=3, depth=1)).__name__ == "MLP"


@pytest.mark.parametrize(
    ("shape", "steps", "features"), [((40,), 40, 1), ((1, 40), 40, 1), ((3, 8, 6), 8, 18)]
)
def test_gru_reads_sequences_and_images_row_by_row(shape, steps, features):
    width, depth, k = 6, 2, NUM_CLASSES
    model: Any = build_model("gru", shape, k, width=width, depth=depth)  # its GRU's attributes are read
    assert (model.steps, model.rnn.input_size) == (steps, features)
    # Per layer 3·(in·w + w² + 2w) (input and hidden weights and biases of three gates), then the head.
    layers = sum(3 * (f * width + width * width + 2 * width) for f in [features] + [width] * (depth - 1))
    assert n_params(model) == layers + width * k + k
    # Step t is sample t of a signal, or row t of an image (every channel's pixels in that row).
    x = torch.randn(2, *shape)
    if len(shape) == 1:
        rows = x.unsqueeze(-1)
    elif len(shape) == 2:
        rows = torch.stack([x[:, :, t] for t in range(steps)], dim=1)
    else:
        rows = torch.stack([x[:, :, t, :].reshape(2, -1) for t in range(steps)], dim=1)
    output, _ = model.rnn(rows)
    assert torch.allclose(model(x), model.head(output[:, -1]))
