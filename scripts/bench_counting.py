"""What counting FLOPs costs against a plain forward pass, for a committed set of timm and torchvision models.

    python scripts/bench_counting.py [--models tv:resnet50,timm:resnet18] [--rounds 5] [--out CSV]

Each model is built untrained at its default input size (torchvision: 224×224; timm: its pretrained
config's), batch 1, in eval mode, on 1 CPU thread (`torch.set_num_threads(1)`: the ratio, not the machine's
parallelism, is what is measured), and warmed up (one forward pass, one count). Then each round times, in
alternating order (forward first, then last), so that a drift of the machine hits both alike:

    forward   one plain forward pass without gradients (the yardstick)
    count     harness.compute.flops.count_flops (strict, the default): what `harness measure` counts with

and reports the median of each and their ratio, per model, then the median ratio over all models and the
worst ratio among the small mobile networks (`MOBILE`). The MACs counted are written beside them, so that a
run of another revision (`PYTHONPATH=/tmp/rev python scripts/bench_counting.py`) shows counts unchanged.
The load average is printed before and after: ratios are only comparable on a machine that is not busier
in one half of a run than in the other. Targets (issue #28): median ≤ 2×, worst mobile network ≤ 4×.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

# The committed set: 15 torchvision and 20 timm classifiers, from 0.03 to 17 GMACs, CNNs and transformers.
MODELS = (
    "tv:resnet18,tv:resnet50,tv:mobilenet_v2,tv:mobilenet_v3_small,tv:mobilenet_v3_large,tv:efficientnet_b0,"
    "tv:shufflenet_v2_x1_0,tv:squeezenet1_1,tv:densenet121,tv:regnet_y_400mf,tv:mnasnet1_0,tv:convnext_tiny,"
    "tv:vit_b_16,tv:swin_t,tv:googlenet,"
    "timm:mobilenetv4_conv_small,timm:mobilenetv3_small_100,timm:lcnet_050,timm:efficientnet_b0,timm:tinynet_e,"
    "timm:ghostnet_100,timm:resnet18,timm:resnet50,timm:vit_tiny_patch16_224,timm:deit_small_patch16_224,"
    "timm:convnext_atto,timm:edgenext_xx_small,timm:mobilevit_xxs,timm:regnetx_002,timm:levit_128s,"
    "timm:efficientformerv2_s0,timm:fastvit_t8,timm:poolformer_s12,timm:repvit_m0_9,timm:rexnet_100"
)
# Small mobile networks: the ones whose fixed cost of tracing weighs most against their forward pass.
MOBILE = frozenset(
    {
        "tv:mobilenet_v2",
        "tv:mobilenet_v3_small",
        "tv:mobilenet_v3_large",
        "tv:shufflenet_v2_x1_0",
        "tv:squeezenet1_1",
        "tv:mnasnet1_0",
        "timm:mobilenetv4_conv_small",
        "timm:mobilenetv3_small_100",
        "timm:lcnet_050",
        "timm:tinynet_e",
        "timm:ghostnet_100",
        "timm:mobilevit_xxs",
        "timm:efficientformerv2_s0",
        "timm:repvit_m0_9",
    }
)


def build(spec: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """An untrained model and one input at its default size, for `tv:NAME` or `timm:NAME`."""
    source, name = spec.split(":")
    if source == "tv":
        import torchvision

        return torchvision.models.get_model(name, weights=None).eval(), torch.randn(1, 3, 224, 224)
    import timm

    model = timm.create_model(name, pretrained=False).eval()
    # timm sets a plain dict; nn.Module's attribute type says tensor or module
    assert isinstance(model.pretrained_cfg, dict)
    return model, torch.randn(1, *model.pretrained_cfg["input_size"])


def seconds(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="write the per-model table here as CSV")
    args = parser.parse_args(argv)
    import harness
    from harness.compute.flops import count_flops

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} on {torch.get_num_threads()} thread; harness from "
        f"{os.path.dirname(harness.__file__)}",
        flush=True,
    )
    rows = []
    for spec in args.models.split(","):
        model, x = build(spec)

        def forward(model=model, x=x) -> None:
            with torch.no_grad():
                model(x)

        counted: list[float] = []

        def count(model=model, x=x, counted=counted) -> None:
            counted.append(count_flops(model, x).macs)

        steps = {"forward": forward, "count": count}
        try:
            for step in steps.values():
                step()  # warm-up: allocations, first-call paths
        except Exception as exc:  # noqa: BLE001 - an earlier revision may refuse a model: say so, go on
            print(f"{spec}: not counted ({type(exc).__name__}: {str(exc).splitlines()[0]})", flush=True)
            continue
        times: dict[str, list[float]] = {key: [] for key in steps}
        for i in range(args.rounds):
            for key in list(steps) if i % 2 == 0 else list(steps)[::-1]:
                times[key].append(seconds(steps[key]))
        forward_s, count_s = statistics.median(times["forward"]), statistics.median(times["count"])
        row = {
            "model": spec,
            "mobile": spec in MOBILE,
            "macs": int(counted[-1]),
            "forward_ms": round(forward_s * 1e3, 3),
            "count_ms": round(count_s * 1e3, 3),
            "ratio": round(count_s / forward_s, 3),
            "load_1min": round(os.getloadavg()[0], 2),
        }
        rows.append(row)
        print(
            f"{spec}: forward {row['forward_ms']:.1f} ms, count {row['count_ms']:.1f} ms, "
            f"{row['ratio']:.2f}× [median of {args.rounds}; load {row['load_1min']}]",
            flush=True,
        )
    ratios = [row["ratio"] for row in rows]
    mobile = [row for row in rows if row["mobile"]]
    worst = max(mobile, key=lambda row: row["ratio"], default=None)
    print(f"median count/forward over {len(rows)} models: {statistics.median(ratios):.2f}× (target ≤ 2×)")
    if worst is not None:
        print(f"worst small mobile network: {worst['model']} {worst['ratio']:.2f}× (target ≤ 4×)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.out:
        import pandas as pd

        from harness.results.store import atomic_write_text

        atomic_write_text(Path(args.out), pd.DataFrame(rows).to_csv(index=False))
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
