"""FLOP counts against closed forms (fvcore convention: 1 multiply-accumulate = 1 MAC; FLOPs = 2 × MACs)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.compute._fvcore import FlopCountAnalysis
from harness.compute.flops import UnsupportedOpError, count_flops, torch_forward_flops
from harness.compute.handles import ZEROS, extra_handles
from harness.compute.training import measure_train_step, network_operations
from harness.models import available_models, build_model


def macs(model, *inputs, **kwargs):
    return count_flops(model, inputs if len(inputs) > 1 else inputs[0], **kwargs).macs


def test_linear_counts_weights_not_bias():
    # B × in × out multiply-adds; the bias add is not a multiply-accumulate and is not counted.
    assert macs(nn.Linear(7, 5), torch.randn(3, 7)) == 3 * 7 * 5
    assert macs(nn.Linear(7, 5, bias=False), torch.randn(3, 7)) == 3 * 7 * 5


def test_conv2d_and_conv1d_closed_forms():
    # out elements × (in channels × kernel area); bias not counted.
    assert macs(nn.Conv2d(3, 8, 3, padding=1), torch.randn(2, 3, 10, 10)) == 2 * 8 * 10 * 10 * 3 * 3 * 3
    assert macs(nn.Conv1d(2, 4, 5), torch.randn(1, 2, 20)) == 1 * 4 * 16 * 2 * 5
    assert macs(nn.Conv2d(4, 4, 3, groups=4, padding=1), torch.randn(1, 4, 6, 6)) == 4 * 36 * 1 * 9


def test_norms_as_fvcore_defines_them():
    x = torch.randn(2, 3, 4, 4)
    assert macs(nn.BatchNorm2d(3), x) == 2 * x.numel(), "eval-mode batch norm with affine: 2 per element"
    assert macs(nn.BatchNorm2d(3, affine=False), x) == x.numel()
    assert macs(nn.LayerNorm(4), x) == 5 * x.numel(), "layer norm with affine: 5 per element"


def test_flops_are_twice_macs_and_per_sample_divides_by_batch():
    report = count_flops(nn.Linear(4, 2), torch.randn(6, 4))
    assert report.flops == 2 * report.macs == 2 * 6 * 4 * 2
    assert report.batch_size == 6 and report.flops_per_sample == 2 * 4 * 2


class Attention(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **self.kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}])
def test_sdpa_is_two_b_h_l_s_d(kwargs):
    b, h, length, source, d = 2, 4, 16, 12, 8
    q, k, v = torch.randn(b, h, length, d), torch.randn(b, h, source, d), torch.randn(b, h, source, d)
    assert macs(Attention(**kwargs), q, k, v) == 2 * b * h * length * source * d, "causal counts dense"


def test_sdpa_other_layouts_and_value_width():
    q, k = torch.randn(3, 10, 8), torch.randn(3, 7, 8)  # (B, L, E): no head dim
    v = torch.randn(3, 7, 5)
    assert macs(Attention(), q, k, v) == 3 * 10 * 7 * (8 + 5)
    mask = torch.ones(10, 7, dtype=torch.bool)
    assert macs(Attention(attn_mask=mask), q, k, v) == 3 * 10 * 7 * (8 + 5), "a mask counts dense too"


class SelfAttention(nn.Module):
    def __init__(self, embed, heads):
        super().__init__()
        self.mha = nn.MultiheadAttention(embed, heads, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


def test_multihead_attention_same_count_on_both_paths():
    b, length, e = 2, 5, 16
    expected = b * (4 * length * e * e + 2 * length * length * e)  # q,k,v,out projections + attention
    model, x = SelfAttention(e, 4).eval(), torch.randn(b, length, e)
    # count_flops runs without grad: nn.MultiheadAttention takes its fused _native_multi_head_attention path.
    report = count_flops(model, x)
    assert "aten::_native_multi_head_attention" in _ops_seen(model, x, grad=False)
    assert report.macs == expected
    # With grad it decomposes into linears and scaled_dot_product_attention.
    assert "aten::scaled_dot_product_attention" in _ops_seen(model, x, grad=True)
    with torch.enable_grad():
        analysis = FlopCountAnalysis(model, x).set_op_handle(**extra_handles())
        analysis.unsupported_ops_warnings(False)
        assert analysis.total() == expected and not analysis.unsupported_ops()


def _ops_seen(model, x, grad):
    with torch.set_grad_enabled(grad):
        graph = torch.jit.trace(model, x, check_trace=False).inlined_graph
    return {node.kind() for node in graph.nodes()}


class Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_strict_mode_names_the_unhandled_op():
    with pytest.raises(UnsupportedOpError, match="aten::cumsum"):
        count_flops(Cumsum(), torch.randn(2, 3))
    with pytest.warns(UserWarning, match="aten::cumsum"):
        report = count_flops(Cumsum(), torch.randn(2, 3), strict=False)
    assert report.unsupported == {"aten::cumsum": 1} and report.macs == 0


def test_zero_handles_each_carry_a_reason():
    assert {"aten::max_pool2d", "aten::add_", "aten::mul", "aten::gelu", "aten::softmax"} <= set(ZEROS)
    assert all(reason.strip() for reason in ZEROS.values())


def test_resnet18_matches_fvcores_published_count():
    import torchvision

    report = count_flops(torchvision.models.resnet18(), torch.randn(1, 3, 224, 224))
    assert report.macs == 1_819_065_856  # fvcore's count for torchvision resnet18 at 224×224 (1.82 GMAC)
    assert report.unsupported == {}


SHAPES = {"mlp": (1, 8, 8), "cnn": (1, 40), "resnet": (3, 16, 16), "transformer": (1, 28, 28)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_registered_model_counts_completely(name):
    assert name in available_models()
    model = build_model(name, SHAPES[name], 10, width=16, depth=2)
    report = count_flops(model, torch.randn(2, *SHAPES[name]))  # strict: raises on any unhandled op
    assert report.unsupported == {} and report.macs > 0


def test_counting_leaves_the_model_untouched():
    model = build_model("cnn", (1, 8, 8), 10, width=8, depth=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, torch.randn(4, 1, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_torch_cross_check_agrees_on_matmul_models():
    mlp = build_model("mlp", (1, 8, 8), 10, width=32, depth=3)
    x = torch.randn(4, 1, 8, 8)
    assert torch_forward_flops(mlp, x) / count_flops(mlp, x).flops == pytest.approx(1.0, rel=0.01)
    convs = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.Flatten(), nn.LazyLinear(10)
    )
    x = torch.randn(2, 3, 12, 12)
    convs(x)
    assert torch_forward_flops(convs, x) / count_flops(convs, x).flops == pytest.approx(1.0, rel=0.01)


def test_torch_counter_misses_attention_on_the_cpu():
    """Documented: on the CPU torch's counter sees no SDPA and no fused MHA; ours counts both."""
    q = torch.randn(1, 2, 8, 4)
    assert torch_forward_flops(Attention(), (q, q, q)) == 0
    assert count_flops(Attention(), (q, q, q)).flops == 2 * 2 * 1 * 2 * 8 * 8 * 4
    x = torch.randn(1, 5, 16)
    assert torch_forward_flops(SelfAttention(16, 4), x) == 0


def test_measured_training_step():
    # One linear layer on an input without grad: forward + weight gradient, no input gradient → ratio 2.
    step = measure_train_step(
        nn.Linear(8, 4), lambda p: torch.optim.SGD(p, lr=0.1), torch.randn(3, 8), torch.tensor([0, 1, 2])
    )
    assert step.forward == 2 * 3 * 8 * 4 and step.step == 2 * step.forward and step.fp_bp_ratio == 2.0
    assert step.per_sample == step.step / 3
    deep = build_model("mlp", (16,), 4, width=64, depth=4)
    ratio = measure_train_step(
        deep, lambda p: torch.optim.SGD(p, lr=0.1), torch.randn(8, 16), torch.zeros(8, dtype=torch.long)
    ).fp_bp_ratio
    assert 2.5 < ratio < 3.0, "deeper nets approach the paper's 3 (all but the first layer need input grads)"


def test_network_operations_is_the_papers_product():
    assert network_operations(1e6, 3, 2.5, 1000) == 1e6 * 3 * 2.5 * 1000
