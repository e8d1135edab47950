"""Count one small model of many Hugging Face transformers families strictly: does the category policy
refuse any op they emit?

    python scripts/survey_transformers.py [OUT_CSV]

Each family is built from its config class (random weights, nothing downloaded) with 2 layers and small
widths, fed 16 token ids (or a 32×32 image, or a second of 16 kHz audio features where the model reads
those), and counted by `count_flops` in strict mode with the model's default settings (use_cache
included). A row per family: counted or the one-line error, and the ops the policy made free. The CSV
(default results/measure/transformers_families.csv) is written atomically at the end.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from harness.compute.flops import count_flops
from harness.errors import one_line
from harness.results.store import atomic_write_text

TEXT = {"vocab_size": 1000}
SMALL = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
# family: (config class, model class, config arguments, inputs)
FAMILIES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_layer": 2, "n_embd": 64, "n_head": 4, **TEXT}, "ids"),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {**SMALL, **TEXT}, "ids"),
    "gptj": (
        "GPTJConfig",
        "GPTJForCausalLM",
        {"n_layer": 2, "n_embd": 64, "n_head": 4, "rotary_dim": 8, **TEXT},
        "ids",
    ),
    "opt": (
        "OPTConfig",
        "OPTForCausalLM",
        {**SMALL, "ffn_dim": 128, "word_embed_proj_dim": 64, **TEXT},
        "ids",
    ),
    "bloom": (
        "BloomConfig",
        "BloomForCausalLM",
        {"n_layer": 2, "hidden_size": 64, "n_head": 4, **TEXT},
        "ids",
    ),
    "falcon": ("FalconConfig", "FalconForCausalLM", {**SMALL, **TEXT}, "ids"),
    "llama": ("LlamaConfig", "LlamaForCausalLM", {**SMALL, "num_key_value_heads": 2, **TEXT}, "ids"),
    "mistral": ("MistralConfig", "MistralForCausalLM", {**SMALL, "num_key_value_heads": 2, **TEXT}, "ids"),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {**SMALL, "num_key_value_heads": 2, **TEXT}, "ids"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {**SMALL, "num_key_value_heads": 2, **TEXT}, "ids"),
    "gemma": (
        "GemmaConfig",
        "GemmaForCausalLM",
        {**SMALL, "num_key_value_heads": 2, "head_dim": 16, **TEXT},
        "ids",
    ),
    "phi": ("PhiConfig", "PhiForCausalLM", {**SMALL, **TEXT}, "ids"),
    "bert": ("BertConfig", "BertForMaskedLM", {**SMALL, **TEXT}, "ids"),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM", {**SMALL, **TEXT}, "ids"),
    "distilbert": (
        "DistilBertConfig",
        "DistilBertModel",
        {"n_layers": 2, "dim": 64, "hidden_dim": 128, "n_heads": 4, **TEXT},
        "ids",
    ),
    "albert": ("AlbertConfig", "AlbertModel", {**SMALL, "embedding_size": 32, **TEXT}, "ids"),
    "electra": ("ElectraConfig", "ElectraModel", {**SMALL, "embedding_size": 32, **TEXT}, "ids"),
    "deberta_v2": ("DebertaV2Config", "DebertaV2Model", {**SMALL, **TEXT}, "ids"),
    "t5": (
        "T5Config",
        "T5ForConditionalGeneration",
        {"num_layers": 2, "d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128, **TEXT},
        "seq2seq",
    ),
    "bart": (
        "BartConfig",
        "BartForConditionalGeneration",
        {
            "encoder_layers": 2,
            "decoder_layers": 2,
            "d_model": 64,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            **TEXT,
        },
        "seq2seq",
    ),
    "vit": ("ViTConfig", "ViTModel", {**SMALL, "image_size": 32, "patch_size": 8}, "image"),
    "deit": ("DeiTConfig", "DeiTModel", {**SMALL, "image_size": 32, "patch_size": 8}, "image"),
    "swin": (
        "SwinConfig",
        "SwinModel",
        {
            "image_size": 32,
            "patch_size": 4,
            "embed_dim": 32,
            "depths": [1, 1],
            "num_heads": [2, 4],
            "window_size": 4,
        },
        "image",
    ),
    "convnext": (
        "ConvNextConfig",
        "ConvNextModel",
        {"hidden_sizes": [16, 32], "depths": [1, 1], "num_stages": 2},
        "image",
    ),
    "clip_vision": (
        "CLIPVisionConfig",
        "CLIPVisionModel",
        {**SMALL, "image_size": 32, "patch_size": 8},
        "image",
    ),
    "whisper": (
        "WhisperConfig",
        "WhisperForConditionalGeneration",
        {
            "encoder_layers": 2,
            "decoder_layers": 2,
            "d_model": 64,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "num_mel_bins": 16,
            "max_source_positions": 50,
        },
        "audio",
    ),
}


def inputs_for(kind: str, config: Any) -> Any:
    ids = torch.randint(0, 1000, (1, 16))
    if kind == "ids":
        return {"input_ids": ids}
    if kind == "seq2seq":
        return {"input_ids": ids, "decoder_input_ids": torch.randint(0, 1000, (1, 8))}
    if kind == "image":
        return {"pixel_values": torch.randn(1, 3, 32, 32)}
    return {"input_features": torch.randn(1, config.num_mel_bins, 100), "decoder_input_ids": ids[:, :8]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/measure/transformers_families.csv")
    parser.add_argument("--families", help=f"comma-separated, of: {', '.join(FAMILIES)} (default: all)")
    args = parser.parse_args(argv)
    chosen = args.families.split(",") if args.families else list(FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    import transformers

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows, failed = [], 0
    for family in chosen:
        config_class, model_class, arguments, kind = FAMILIES[family]
        row: dict[str, Any] = {"family": family, "model": model_class}
        try:
            config = getattr(transformers, config_class)(**arguments)
            model = getattr(transformers, model_class)(config)
            report = count_flops(model, inputs_for(kind, config))
            row |= {"macs": int(report.macs), "free_ops": " ".join(sorted(report.free)), "error": ""}
        except Exception as exc:  # noqa: BLE001 - every family gets a row; the error is its content
            row |= {"error": one_line(exc)}
            failed += 1
        rows.append(row)
        print(f"{family}: {row['error'] or 'counted'}", file=sys.stderr, flush=True)
    atomic_write_text(Path(args.out), pd.DataFrame(rows).to_csv(index=False))
    counted = len(rows) - failed
    print(f"{counted}/{len(rows)} counted; transformers {transformers.__version__}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
