"""Hugging Face models, counted as they are (default use_cache, ModelOutput), against closed forms.

Each model is built from its config class with random weights (nothing is downloaded), 2 layers, small
widths. The closed forms: every weight matrix's MACs once per token it multiplies (Q, K, V, O, the MLP, the
LM head), plus the two attention products per layer (Q·Kᵀ and P·V, T·S·head width each, summed over heads).
"""

import pytest
import torch

from harness.compute.flops import count_flops

transformers = pytest.importorskip("transformers")

T, VOCAB = 16, 1000


def ids(length=T, high=VOCAB):
    return torch.randint(0, high, (1, length))


def test_gpt2_weights_and_attention_per_layer():
    d, layers = 64, 2
    config = transformers.GPT2Config(n_layer=layers, n_embd=d, n_head=4, vocab_size=VOCAB, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    assert model.config.use_cache, "counted with its default: a cache in the output"
    report = count_flops(model, ids())
    split = report.by_category
    # attention's c_attn (d×3d) and c_proj (d×d), the MLP's c_fc (d×4d) and c_proj (4d×d); the tied LM head
    assert split["matmul"] == T * (layers * 12 * d * d + d * VOCAB)
    assert split["attention"] == layers * 2 * T * T * d
    assert set(split) == {"matmul", "attention", "norm"}
    assert model.config.use_cache, "use_cache is put back"
    half = count_flops(model, ids(), attention_causal="half").by_category
    assert half["attention"] == layers * T * T * d and half["matmul"] == split["matmul"]


def test_bert_with_attention_mask_keywords():
    d, inner, layers = 64, 128, 2
    config = transformers.BertConfig(
        num_hidden_layers=layers,
        hidden_size=d,
        num_attention_heads=4,
        intermediate_size=inner,
        vocab_size=VOCAB,
    )
    model = transformers.BertModel(config)
    inputs = {"input_ids": ids(), "attention_mask": torch.ones(1, T, dtype=torch.long)}
    split = count_flops(model, inputs).by_category
    # per layer Q, K, V, O (4d²) and the MLP (2·d·inner) per token; the pooler's d×d on the [CLS] token
    assert split["matmul"] == T * layers * (4 * d * d + 2 * d * inner) + d * d
    assert split["attention"] == layers * 2 * T * T * d


def test_llama_grouped_query_attention():
    d, inner, layers, heads, kv_heads = 64, 160, 2, 4, 2
    config = transformers.LlamaConfig(
        num_hidden_layers=layers,
        hidden_size=d,
        intermediate_size=inner,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=VOCAB,
    )
    model = transformers.LlamaForCausalLM(config)
    split = count_flops(model, ids()).by_category
    head = d // heads
    per_token = (
        layers * (2 * d * d + 2 * d * kv_heads * head + 3 * d * inner) + d * VOCAB
    )  # q,o; k,v; MLP; head
    assert split["matmul"] == T * per_token
    assert split["attention"] == layers * 2 * T * T * d, "the work follows the query's heads"


def test_t5_encoder_decoder_named_inputs():
    d, d_kv, heads, d_ff, layers, source, target = 64, 16, 4, 128, 2, 12, 8
    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=d,
        d_kv=d_kv,
        num_heads=heads,
        d_ff=d_ff,
        num_layers=layers,
        num_decoder_layers=layers,
    )
    model = transformers.T5ForConditionalGeneration(config)
    inner = heads * d_kv
    report = count_flops(model, {"input_ids": ids(source), "decoder_input_ids": ids(target)})
    encoder = source * layers * (4 * d * inner + 2 * d * d_ff)
    decoder = (
        target * layers * (4 * d * inner + 2 * d * inner + 2 * d * d_ff)  # self-attention, cross q/o, MLP
        + source * layers * 2 * d * inner  # cross-attention's keys and values, from the encoder's tokens
        + target * d * VOCAB  # LM head
    )
    assert report.by_category["matmul"] == encoder + decoder
    # encoder self-attention, decoder self-attention and cross-attention (the position bias is SDPA's mask)
    products = layers * 2 * (source * source + target * target + target * source) * inner
    assert report.by_category["attention"] == products


def test_a_failing_forward_is_one_line_naming_the_module():
    from harness.compute.flops import CountError

    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB)
    with pytest.raises(
        CountError, match=r"failed in transformer\.wte \(Embedding\) of GPT2LMHeadModel"
    ) as info:
        count_flops(transformers.GPT2LMHeadModel(config), torch.randn(1, T))  # floats where ids belong
    assert "\n" not in str(info.value) and "Long" in info.value.cause


def test_vit_patches_and_class_token():
    d, inner, layers, patch, size = 64, 128, 2, 8, 32
    config = transformers.ViTConfig(
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=inner,
        image_size=size,
        patch_size=patch,
    )
    split = count_flops(transformers.ViTModel(config), torch.randn(1, 3, size, size)).by_category
    patches = (size // patch) ** 2
    tokens = patches + 1  # the class token
    assert split["convolution"] == patches * 3 * patch * patch * d
    assert split["matmul"] == tokens * layers * (4 * d * d + 2 * d * inner) + d * d  # + the pooler on [CLS]
    assert split["attention"] == layers * 2 * tokens * tokens * d


def test_mixtral_experts_count_the_tokens_routed_to_them():
    """A mixture of experts' grouped matmul (aten::_grouped_mm): each token through its top-k experts."""
    d, inner, layers, experts, top_k = 64, 128, 2, 8, 2
    config = transformers.MixtralConfig(
        num_hidden_layers=layers,
        hidden_size=d,
        intermediate_size=inner,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        num_local_experts=experts,
        num_experts_per_tok=top_k,
    )
    report = count_flops(transformers.MixtralForCausalLM(config), ids())
    head = d // 4
    # q, o; k, v (2 heads); the router; top_k experts' gate, up and down; the LM head
    per_token = layers * (2 * d * d + 2 * d * 2 * head + d * experts + top_k * 3 * d * inner) + d * VOCAB
    assert report.by_category["matmul"] == T * per_token
    assert report.free["aten::histc"] == "indexing and lookup"
