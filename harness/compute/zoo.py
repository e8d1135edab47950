"""The counter checked on models no one here wrote: torchvision's classification zoo.

Each model is built untrained (`weights=None`: nothing is downloaded) at its weights' evaluation crop,
batch 1, and counted under the default (strict) settings. Its weights' metadata, shipped inside
torchvision, gives the published `_ops` (GMACs of matmuls, convolutions and attention; torchvision
counts no norms, pools or interpolation), so `ratio` compares like with like. torch's own counter is run
with attention as plain products (`math_attention`), which it then sees.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import pandas as pd
import torch

from harness.compute.flops import count_flops, torch_forward_flops
from harness.errors import ConfigError

# torch's counter and torchvision's _ops count these; norms, pools and resampling they leave out.
WORK = ("matmul", "convolution", "attention")
SPLIT = ("matmul", "convolution", "attention", "norm", "pool", "resample", "other")


def torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def count_torchvision(name: str, *, weights: str | None = None, forward: bool = False) -> dict[str, Any]:
    """One row of the zoo table for torchvision model `name` (see results/measure/README.md), at the crop of
    its `weights` (a member of its weights enum, e.g. "IMAGENET1K_SWAG_E2E_V1"; default: DEFAULT)."""
    import torchvision

    chosen = torchvision.models.get_model_weights(name)[weights or "DEFAULT"]
    resolution = int(chosen.transforms().crop_size[0])
    # A ViT's size is set by its weights (vit_h_14's default weights are at 518); built without them,
    # it is given the same image size, as torchvision's builder would.
    size = {"image_size": resolution} if name.startswith("vit_") else {}
    model = torchvision.models.get_model(name, weights=None, **size).eval()
    x = torch.randn(1, 3, resolution, resolution)
    start = time.perf_counter()
    report = count_flops(model, x)
    count_s = time.perf_counter() - start
    split = report.by_category
    work = sum(split.get(category, 0.0) for category in WORK)
    torch_macs = torch_forward_flops(model, x, math=True) / 2
    published = float(chosen.meta["_ops"]) * 1e9
    row: dict[str, Any] = {
        "model": name,
        "resolution": resolution,
        "torchvision_ops_gmacs": chosen.meta["_ops"],
        "macs": int(report.macs),  # MACs are whole numbers: the table keeps every digit
        **{f"macs_{category}": int(split.get(category, 0)) for category in SPLIT},
        "ratio": work / published,
        "torch_ratio": work / torch_macs,
        "count_s": count_s,
    }
    if forward:
        with torch.no_grad():
            start = time.perf_counter()
            model(x)
            row["forward_s"] = time.perf_counter() - start
    return row


# The SWAG weights were pretrained on Instagram's 3.6-billion-image set (arXiv 2201.08371) before ImageNet-1K.
_EXTRA_DATA = MappingProxyType({"SWAG": "IG-3.6B (SWAG, arXiv 2201.08371)"})
REFERENCE_COLUMNS = (
    "model",
    "weights",
    "resolution",
    "top1_error",
    "top5_error",
    "params",
    "flops_forward",
    "macs_forward",
    "torchvision_ops_gmacs",
    "year",
    "month",
    "arxiv",
    "extra_data",
    "pretraining",
    "torchvision",
)


def torchvision_weights() -> list[tuple[str, str]]:
    """(model, weights name) for every trained weights of every torchvision classifier."""
    import torchvision

    return [
        (name, weights.name)
        for name in torchvision_classifiers()
        for weights in torchvision.models.get_model_weights(name)
    ]


def paper_of(model: str, papers: pd.DataFrame) -> dict[str, Any]:
    """The architecture's paper (year, month, arXiv id): the longest prefix of `model` in `papers`."""
    matches = papers[[model.startswith(p) for p in papers["prefix"]]]
    if matches.empty:
        raise ConfigError(f"{model}: no architecture paper in torchvision_papers.csv starts its name")
    row = matches.loc[matches["prefix"].str.len().idxmax()]
    return {"year": int(row["year"]), "month": int(row["month"]), "arxiv": str(row["arxiv"])}


def reference_row(
    model: str, weights_name: str, papers: pd.DataFrame, counted: pd.DataFrame | None = None
) -> dict[str, Any]:
    """One row of the torchvision reference table: the weights' metadata and our forward MACs at its crop.

    MACs are taken from `counted` (rows of the zoo table, by model and resolution) when it has this
    architecture at this crop, since counting is deterministic; otherwise the model is counted here.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(model)[weights_name]
    resolution = int(weights.transforms().crop_size[0])
    hit = (
        counted[(counted["model"] == model) & (counted["resolution"] == resolution)]
        if counted is not None
        else pd.DataFrame()
    )
    macs = int(hit["macs"].iloc[0]) if len(hit) else count_torchvision(model, weights=weights_name)["macs"]
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    pretraining = next((what for key, what in _EXTRA_DATA.items() if key in weights_name), "")
    return {
        "model": model,
        "weights": weights_name,
        "resolution": resolution,
        "top1_error": round(1.0 - metrics["acc@1"] / 100.0, 5),
        "top5_error": round(1.0 - metrics["acc@5"] / 100.0, 5),
        "params": int(weights.meta["num_params"]),
        "flops_forward": 2 * macs,
        "macs_forward": macs,
        "torchvision_ops_gmacs": float(weights.meta["_ops"]),
        **paper_of(model, papers),
        "extra_data": bool(pretraining),
        "pretraining": pretraining,
        "torchvision": torchvision.__version__,
    }


# timm's published figures: its benchmark CSVs (shared/reference/timm/, from huggingface/pytorch-image-models
# results/), `infer_gmacs` rounded to 0.01 GMAC, counted by fvcore's FlopCountAnalysis with its default
# handles (timm's benchmark.py), batch 1, at `infer_img_size`.
TIMM_ROUNDING_GMACS = 0.005


def timm_families(published: pd.DataFrame) -> list[tuple[str, int]]:
    """(model, image size): one architecture per timm model module (family), the cheapest in `published`
    that is not one of timm's `test_*` models, so that every family's ops are met at the least CPU time."""
    from timm.models import _registry

    chosen: dict[str, tuple[float, str, int]] = {}
    for row in published.itertuples():
        name = str(row.model)
        module = _registry._model_to_module.get(name.split(".")[0])
        if module is None or name.startswith("test_"):
            continue
        candidate = (float(row.infer_gmacs), name, int(row.infer_img_size))
        chosen[module] = min(chosen.get(module, candidate), candidate)
    return [(name, size) for _, name, size in sorted(chosen.values())]


def _fvcore_default_macs(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    """What timm's benchmark counts: fvcore's FlopCountAnalysis with its default handles only."""
    from harness.compute._fvcore import FlopCountAnalysis

    with torch.no_grad():
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        return float(analysis.total()), {op: float(v) for op, v in analysis.by_operator().items()}


def count_timm(name: str, image_size: int, published_gmacs: float) -> dict[str, Any]:
    """One row of results/measure/timm.csv: our strict count of timm model `name` (untrained, batch 1, at
    `image_size`) beside timm's published GMACs, with fvcore's default count (timm's method) and the
    reason for a difference over 1%."""
    import timm

    # timm's benchmark builds each model at its default configuration and feeds its default input size,
    # which is what `infer_img_size` records.
    model = timm.create_model(name, pretrained=False).eval()
    x = torch.randn(1, 3, image_size, image_size)
    start = time.perf_counter()
    report = count_flops(model, x)
    count_s = time.perf_counter() - start
    default_macs, default_ops = _fvcore_default_macs(model, x)
    reparameterized = _reparameterized_macs(model, x)
    published = published_gmacs * 1e9
    ours_ops = report.by_operator
    differing = {
        op: ours_ops.get(op, 0.0) - default_ops.get(op, 0.0)
        for op in sorted(set(ours_ops) | set(default_ops))
        if ours_ops.get(op, 0.0) != default_ops.get(op, 0.0)
    }
    ratio = report.macs / published if published else float("nan")
    return {
        "model": name,
        "image_size": image_size,
        "timm_gmacs": published_gmacs,
        "macs": int(report.macs),
        "ratio": ratio,
        "fvcore_default_macs": int(default_macs),
        "fvcore_default_ratio": default_macs / published if published else float("nan"),
        # Models with training-time branches that timm fuses for inference (MobileOne, FastViT, RepViT, ...):
        # the count after timm.utils.reparameterize_model, empty for the others.
        "macs_reparameterized": reparameterized,
        "ours_minus_fvcore_default": "; ".join(f"{op} {v / 1e9:+.4f} G" for op, v in differing.items()),
        "free_ops": " ".join(sorted(report.free)),
        "reason": _reason(report.macs, default_macs, published, differing, reparameterized),
        "count_s": round(count_s, 3),
    }


def _reparameterized_macs(model: torch.nn.Module, x: torch.Tensor) -> int | None:
    """Our count of the inference form timm fuses a re-parameterizable model into, or None if it has none."""
    import copy

    from timm.utils.model import reparameterize_model

    if not any(
        hasattr(m, name) for m in model.modules() for name in ("reparameterize", "fuse", "switch_to_deploy")
    ):
        return None
    fused = reparameterize_model(copy.deepcopy(model))
    return int(count_flops(fused, x).macs)


def _reason(
    ours: float, default: float, published: float, differing: dict[str, float], reparameterized: int | None
) -> str:
    """Why ours differs from timm's figure by over 1% (empty when it does not)."""
    if not published or abs(ours - published) <= 0.01 * published:
        return ""
    rounding = TIMM_ROUNDING_GMACS * 1e9
    if abs(ours - published) <= rounding:
        return "rounding: timm publishes 0.01 GMAC steps"
    if reparameterized is not None and abs(reparameterized - published) <= max(rounding, 0.01 * published):
        return (
            "timm's figure is of the re-parameterized (fused, inference) model, "
            f"which we count at {reparameterized / 1e9:.4f} G; ours is the model as built, branches unfused"
        )
    parts = []
    if abs(default - published) <= max(rounding, 0.01 * published):
        parts.append("timm's figure is fvcore's default count")
    else:
        parts.append(f"fvcore's default count is {default / 1e9:.4f} G, not timm's figure either")
    if differing:
        biggest = max(differing, key=lambda op: abs(differing[op]))
        parts.append(f"ours differs most in {biggest} ({differing[biggest] / 1e9:+.4f} G)")
    return "; ".join(parts)
