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


class Cdist(nn.Module):
    def forward(self, x):
        return torch.cdist(x, x)


def test_strict_mode_names_the_unhandled_op():
    with pytest.raises(UnsupportedOpError, match="aten::cdist"):
        count_flops(Cdist(), torch.randn(2, 3))
    with pytest.warns(UserWarning, match="aten::cdist"):
        report = count_flops(Cdist(), torch.randn(2, 3), strict=False)
    assert report.unsupported == {"aten::cdist": 1} and report.macs == 0


def test_zero_handles_each_carry_a_reason():
    assert {"aten::max_pool2d", "aten::add_", "aten::mul", "aten::gelu", "aten::softmax"} <= set(ZEROS)
    assert all(reason.strip() for reason in ZEROS.values())


def test_resnet18_matches_fvcores_published_count():
    import torchvision

    report = count_flops(torchvision.models.resnet18(), torch.randn(1, 3, 224, 224))
    assert report.macs == 1_819_065_856  # fvcore's count for torchvision resnet18 at 224×224 (1.82 GMAC)
    assert report.unsupported == {}


SHAPES = {"mlp": (1, 8, 8), "cnn": (1, 40), "gru": (1, 40), "resnet": (3, 16, 16), "transformer": (1, 28, 28)}


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


class _Counter(nn.Module):
    """Writes its buffers in forward, in place and by reassignment, even in eval mode."""

    calls: torch.Tensor  # buffers (register_buffer below)
    last: torch.Tensor

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("last", torch.zeros(4))

    def forward(self, x):
        self.calls += 1
        self.last = x[0].detach()
        return self.drop(self.linear(x))


def test_counting_puts_back_modes_buffers_and_hooks_even_when_it_fails():
    model = _Counter().train()
    model.drop.eval()  # mixed modes come back as they were
    calls, last = model.calls, model.last
    hooks = {name: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()}
    assert count_flops(model, torch.randn(3, 4)).macs == 3 * 4 * 4
    assert model.training and not model.drop.training and model.linear.training
    assert model.calls is calls and model.calls.item() == 0, "the same buffer, its value put back"
    assert model.last is last and torch.equal(last, torch.zeros(4))
    with pytest.raises(RuntimeError):
        count_flops(model, torch.randn(3, 5))  # the forward pass fails inside the trace
    assert model.training and model.calls.item() == 0
    # torch is put back too: the scopes were opened in nn.Module's _slow_forward, replaced for the trace
    assert vars(nn.Module)["_slow_forward"].__module__ == "torch.nn.modules.module"
    assert torch.jit._trace._trace_module_map is None
    assert hooks == {
        name: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()
    }


def test_a_model_built_in_inference_mode_counts():
    with torch.inference_mode():
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    plain = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    assert count_flops(model, torch.randn(3, 4)).macs == count_flops(plain, torch.randn(3, 4)).macs > 48


def test_modules_scoped_as_fvcores_hooks_scope_them():
    """Traced with torch's module scopes, every module gets the MACs fvcore's own per-module hooks give it."""
    import torchvision
    from fvcore.nn import FlopCountAnalysis as FvcoreFlopCountAnalysis

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        theirs = FvcoreFlopCountAnalysis(model, x).set_op_handle(**extra_handles())
        theirs.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        expected = {name: float(v) for name, v in theirs.by_module().items()}
    assert count_flops(model, x).by_module == expected
    assert len(expected) > 40 and expected["layer1.0.conv1"] > 0


class _Shared(nn.Module):
    """A module called twice under two names, one called through a sibling, one through .forward, and
    a pre-hook that computes (weight norm): each op lands in the scope torch's tracer gives it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = self.a
        self.norm = nn.utils.parametrizations.weight_norm(nn.Linear(8, 8))
        self.old_norm = nn.utils.weight_norm(nn.Linear(8, 8))
        self.seq = nn.Sequential(nn.Linear(8, 8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.seq.forward(self.b(self.a(x)))
        return self.seq[0](self.old_norm(self.norm(x)))


@pytest.mark.filterwarnings("ignore:.*weight_norm:FutureWarning", "ignore:no FLOP handle:UserWarning")
def test_scopes_of_shared_hooked_and_directly_called_modules_are_fvcores():
    from fvcore.nn import FlopCountAnalysis as FvcoreFlopCountAnalysis

    model, x = _Shared().eval(), torch.randn(2, 8)
    with torch.no_grad():
        theirs = FvcoreFlopCountAnalysis(model, x).set_op_handle(**extra_handles())
        theirs.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        expected = {name: float(v) for name, v in theirs.by_module().items()}
    assert count_flops(model, x, strict=False).by_module == expected
    assert expected["a"] == 2 * 2 * 8 * 8 and expected["seq.0"] == 2 * 2 * 8 * 8


def test_counts_in_two_threads_are_right_and_put_torch_back():
    # The trace swaps torch's process-wide nn.Module._slow_forward: two counts at once crossed their swaps
    # (internal asserts, and the swap left installed for good).
    from concurrent.futures import ThreadPoolExecutor

    original = vars(nn.Module)["_slow_forward"]
    net = nn.Sequential(*(nn.Linear(16, 16) for _ in range(20)))
    x = torch.randn(2, 16)
    with ThreadPoolExecutor(2) as pool:
        counted = list(pool.map(lambda _: count_flops(net, x).macs, range(40)))
    assert counted == [20 * 2 * 16 * 16] * 40
    assert vars(nn.Module)["_slow_forward"] is original


def test_weight_norm_counts_its_sums_of_squares_in_strict_mode():
    # aten::_weight_norm had no handle: strict counting refused every weight-normalised model.
    linear = nn.utils.parametrizations.weight_norm(nn.Linear(16, 8))
    report = count_flops(linear, torch.randn(4, 16))
    assert report.by_operator == {"linear": 4 * 16 * 8, "_weight_norm": 16 * 8}  # one square per weight
    conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 8, 3))
    assert count_flops(conv, torch.randn(2, 3, 10, 10)).by_operator["_weight_norm"] == 8 * 3 * 3 * 3


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


# ---- issue 14: handles of our own, the strict policy by category, the declared batch dim ----


class Fn(nn.Module):
    """A module around a function of its inputs, so any op can be traced and counted."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def fn_macs(fn, *shapes):
    return macs(Fn(fn), *(torch.randn(*shape) for shape in shapes))


@pytest.mark.parametrize(
    ("fn", "shapes", "expected"),
    [
        (torch.matmul, [(16, 32), (4, 32, 8)], 4 * 16 * 32 * 8),  # a weight times a batch: fvcore said 4,096
        (torch.matmul, [(4, 16, 32), (32,)], 4 * 16 * 32),  # 1-D second operand: fvcore raised IndexError
        (torch.matmul, [(32,), (4, 32, 8)], 4 * 32 * 8),  # 1-D first operand
        (torch.matmul, [(32,), (32,)], 32),  # dot product
        (torch.matmul, [(2, 1, 5, 6), (3, 6, 7)], 2 * 3 * 5 * 6 * 7),  # both batches broadcast
        (torch.mm, [(5, 6), (6, 7)], 5 * 6 * 7),
        (torch.bmm, [(3, 5, 6), (3, 6, 7)], 3 * 5 * 6 * 7),
        (torch.mv, [(5, 6), (6,)], 5 * 6),
        (lambda c, a, b: torch.addmm(c, a, b), [(5, 7), (5, 6), (6, 7)], 5 * 6 * 7),
        (lambda c, a, b: torch.baddbmm(c, a, b), [(3, 5, 7), (3, 5, 6), (3, 6, 7)], 3 * 5 * 6 * 7),
    ],
)
def test_matrix_products_follow_torch_matmul(fn, shapes, expected):
    assert fn_macs(fn, *shapes) == expected


def test_matmul_equals_torchs_counter_on_broadcast_shapes():
    model, inputs = Fn(torch.matmul), (torch.randn(16, 32), torch.randn(4, 32, 8))
    assert torch_forward_flops(model, inputs) == count_flops(model, inputs).flops


@pytest.mark.parametrize(
    ("equation", "shapes", "expected"),
    [
        ("ij,jk->ik", [(16, 64), (64, 64)], 65_536),  # fvcore's 4-digit estimate said 65,550
        ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)], 2 * 3 * 5 * 7 * 8),
        ("...ij,...jk", [(2, 5, 6), (2, 6, 7)], 2 * 5 * 6 * 7),  # ellipsis, implicit output
        ("ij,jk->i", [(5, 6), (6, 7)], 5 * 6),  # k is summed out of the second operand first
        # left to right: (ij,jk) -> ik costs 5·6·7, then (ik,kl) -> il costs 5·7·3
        ("ij,jk,kl->il", [(5, 6), (6, 7), (7, 3)], 5 * 6 * 7 + 5 * 7 * 3),
        ("ii->i", [(6, 6)], 0),  # one operand: no products
    ],
)
def test_einsum_is_exact(equation, shapes, expected):
    assert fn_macs(lambda *ops: torch.einsum(equation, *ops), *shapes) == expected


LSTM_MACS = 20 * 4 * (64 * 32 + 64 * 64 + 64 * 64 + 64 * 64)  # T·B × 4 gates × (W_ih + W_hh), 2 layers


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_and_gru_closed_forms_in_both_layouts(batch_first):
    x = torch.randn(2, 10, 32) if batch_first else torch.randn(10, 2, 32)
    lstm = nn.LSTM(32, 64, num_layers=2, batch_first=batch_first)
    gru = nn.GRU(32, 64, num_layers=2, batch_first=batch_first)
    assert count_flops(lstm, x).macs == LSTM_MACS == 1_146_880
    assert count_flops(gru, x).macs == LSTM_MACS * 3 // 4 == 860_160
    assert count_flops(gru, x).flops == torch_forward_flops(gru, x), "torch's counter agrees on the GRU"
    assert count_flops(lstm, x).batch_size == 2, "the batch is where the RNN declares it"


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_bidirectional_rnn(nonlinearity):
    rnn = nn.RNN(8, 16, num_layers=2, bidirectional=True, nonlinearity=nonlinearity)
    # layer 0: 2 directions × (16·8 + 16·16); layer 1 reads both directions: 2 × (16·32 + 16·16)
    expected = 5 * 3 * (2 * (16 * 8 + 16 * 16) + 2 * (16 * 32 + 16 * 16))
    assert count_flops(rnn, torch.randn(5, 3, 8)).macs == expected


def test_lstm_with_projection():
    lstm = nn.LSTM(8, 16, proj_size=4)
    expected = 5 * 3 * (4 * 16 * 8 + 4 * 16 * 4 + 4 * 16)  # W_ih, W_hh on the projected state, W_hr
    assert count_flops(lstm, torch.randn(5, 3, 8)).macs == expected


class Packed(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths)
        return self.gru(packed)[0].data


def test_packed_sequence_counts_only_real_steps():
    lengths = torch.tensor([5, 3, 2])
    report = count_flops(Packed(), (torch.randn(5, 3, 8), lengths), batch_dim=1)
    assert report.macs == 10 * 3 * (16 * 8 + 16 * 16)  # 5 + 3 + 2 steps
    assert report.batch_size == 3


def test_sequence_first_batch_is_declared():
    x = torch.randn(10, 2, 32)
    assert count_flops(nn.LSTM(32, 64), x).batch_size == 2
    assert count_flops(nn.LSTM(32, 64, batch_first=True), x).batch_size == 10
    assert count_flops(Fn(torch.relu), x, batch_dim=1).batch_size == 2
    assert count_flops(Fn(torch.relu), x).batch_size == 10


@pytest.mark.parametrize(
    ("pool", "shape", "expected"),
    [
        (nn.AvgPool1d(2), (2, 3, 8), 2 * 3 * 4 * 2),
        (nn.AvgPool2d(2), (2, 3, 8, 8), 2 * 3 * 16 * 4),  # non-overlapping: one per input element
        (nn.AvgPool2d(3, stride=1, padding=1), (1, 4, 6, 6), 4 * 36 * 9),  # Inception's pool
        (nn.AvgPool3d((2, 2, 1)), (1, 2, 4, 4, 4), 2 * 2 * 2 * 4 * 4),
    ],
)
def test_average_pools(pool, shape, expected):
    assert macs(pool, torch.randn(*shape)) == expected


@pytest.mark.parametrize(("mode", "taps"), [("bicubic", 16), ("bilinear", 4), ("nearest", 1)])
def test_upsampling_counts_taps_per_output(mode, taps):
    assert macs(nn.Upsample(scale_factor=2, mode=mode), torch.randn(1, 3, 4, 4)) == 3 * 8 * 8 * taps


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = Fn(lambda x: torch.fft.rfft(x).abs())

    def forward(self, x):
        return self.mix(x)


def test_strict_refuses_work_it_cannot_count_with_the_module_path():
    """FFT is refused rather than counted N·log₂N: its cost depends on the algorithm, radix and
    real/complex arithmetic, and no count of multiply-accumulates would compare with a matmul's."""
    model = nn.Sequential(nn.Linear(8, 8), Block())
    with pytest.raises(UnsupportedOpError, match=r"aten::fft_rfft ×1 at 1\.mix \(Fn\) of Sequential"):
        count_flops(model, torch.randn(2, 8))


class UserLayers(nn.Module):
    """What users write every day: an embedding, a padding mask, an LSTMCell loop, dropout."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.cell = nn.LSTMCell(16, 16)
        self.drop = nn.Dropout(0.1, inplace=True)

    def forward(self, tokens):
        x = self.embed(tokens).masked_fill_((tokens == 0).unsqueeze(-1), 0.0)
        h = c = torch.zeros(tokens.shape[0], 16)
        for t in range(tokens.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.drop(h)


def test_user_layers_count_in_strict_mode():
    report = count_flops(UserLayers(), torch.randint(0, 50, (2, 3)))
    assert report.macs == 3 * 2 * 4 * 16 * (16 + 16)  # each step: both cell matrices, batch 2
    assert report.free["aten::embedding"] == "indexing and lookup"
    assert report.free["aten::masked_fill_"] == "element-wise"


def test_every_category_claims_its_examples_and_the_readme_has_the_table():
    from pathlib import Path

    from harness.compute.policy import CATEGORIES, free_category, policy_table

    for category in CATEGORIES:
        assert all(free_category(op) is category for op in category.examples), category.name
    for op in ("aten::cdist", "aten::fft_rfft", "aten::linalg_solve", "aten::bilinear", "prim::PythonOp"):
        assert free_category(op) is None, op
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert policy_table() in readme, (
        "regenerate the README's table with harness.compute.policy.policy_table()"
    )


def test_counted_ops_each_have_a_category():
    from harness.compute.handles import CATEGORY, FORMULAS

    assert set(FORMULAS) <= set(CATEGORY)
    report = count_flops(torchvision_free_resnet(), torch.randn(1, 3, 16, 16))
    assert set(report.by_category) <= {"convolution", "norm", "pool", "matmul"}
    assert sum(report.by_category.values()) == report.macs


def torchvision_free_resnet():
    return build_model("resnet", (3, 16, 16), 10, width=8, depth=2)


def test_same_padding_convolution_is_counted_as_a_convolution():
    """nn.Conv2d(padding='same') traces to aten::_convolution_mode: its closed form, and torch's count."""
    conv = nn.Conv2d(64, 64, 3, padding="same")
    x = torch.randn(1, 64, 32, 32)
    report = count_flops(conv, x)
    assert report.macs == 64 * 64 * 9 * 32 * 32 == 37_748_736
    assert report.by_category == {"convolution": 37_748_736}
    assert torch_forward_flops(conv, x) == 2 * report.macs
    assert macs(nn.Conv1d(4, 8, 5, padding="valid", groups=2), torch.randn(2, 4, 20)) == 2 * 8 * 16 * 2 * 5


class Scans(nn.Module):
    """Packed-sequence masks (cumsum, diff), positional encodings (cumprod), nn.Unfold and nn.Fold."""

    def forward(self, x):
        patches = F.unfold(x, 2, stride=1)  # im2col
        folded = F.fold(patches, (6, 6), 2, stride=1)  # col2im: overlapping patches summed
        return folded.flatten(1).cumsum(1).diff(dim=1).cumprod(1)


def test_scans_and_folds_are_free_by_category():
    report = count_flops(Scans(), torch.randn(1, 2, 6, 6))
    assert report.macs == 0 and report.unsupported == {}
    assert report.free["aten::col2im"] == report.free["aten::cumsum"] == "scans and overlap sums"
    assert report.free["aten::im2col"] == "data movement"


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(5, 3)

    def forward(self, x, *, extra=None, cache=None):
        return {"out": self.a(x) + self.b(extra), "cache": object(), "none": None}


def test_keyword_inputs_and_non_tensor_outputs():
    report = count_flops(TwoInputs(), {"x": torch.randn(2, 4), "extra": torch.randn(2, 5)})
    assert report.macs == 2 * (4 * 3 + 5 * 3) and report.batch_size == 2


class CompiledInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = torch.compile(nn.Linear(8, 8))
        self.head = nn.Linear(8, 2)
        self.head.compile()

    def forward(self, x):
        return self.head(self.block(x))


def test_compiled_submodules_count_their_eager_modules():
    model = CompiledInside()
    compiled, call = model.block, model.head._compiled_call_impl
    report = count_flops(model, torch.randn(3, 8))
    assert report.macs == 3 * (8 * 8 + 8 * 2) and report.by_module["block"] == 3 * 64
    assert model.block is compiled and model.head._compiled_call_impl is call, "put back"


class MaskedAttention(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def forward(self, q):
        return F.scaled_dot_product_attention(q, q, q, attn_mask=self.mask)


@pytest.mark.parametrize(
    ("mask", "halved"),
    [
        (torch.ones(8, 8, dtype=torch.bool).tril(), True),
        (torch.zeros(8, 8).masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), float("-inf")), True),
        (torch.ones(8, 8, dtype=torch.bool), False),
        (None, False),
    ],
)
def test_half_attention_for_causal_masks_only(mask, halved):
    q = torch.randn(1, 2, 8, 4)
    full = 2 * 2 * 8 * 8 * 4
    assert macs(MaskedAttention(mask), q) == full, "full is the default"
    report = count_flops(MaskedAttention(mask), q, attention_causal="half")
    assert report.macs == (full // 2 if halved else full) and report.attention_causal == "half"
    assert macs(Attention(is_causal=True), q, q, q, attention_causal="half") == full // 2
    with pytest.raises(ValueError, match="attention_causal"):
        count_flops(MaskedAttention(mask), q, attention_causal="quarter")


def test_tracing_without_source_locations_puts_torchs_recorder_back():
    from harness.compute._tracer import _recorder, no_source_locations

    if _recorder() is None:
        pytest.skip("torch's recorder is not found in this build: tracing records source locations")

    model = nn.Sequential(nn.Linear(3, 3))
    with no_source_locations():
        inside, _ = torch.jit._get_trace_graph(model, (torch.randn(1, 3),))
    after, _ = torch.jit._get_trace_graph(model, (torch.randn(1, 3),))
    assert "linear.py" not in str(inside) and "linear.py" in str(after)
