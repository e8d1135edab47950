"""What counting FLOPs costs against a plain forward pass, for torchvision models side by side.

    python scripts/bench_counting.py [--models resnet50,vit_b_16] [--rounds 7]

Each model is built untrained at 224×224, batch 1, in eval mode, and warmed up (one forward, one count).
Then each round times, in alternating order (forward first, then last), so that a drift of the machine hits
every step alike:

    forward   one plain forward pass without gradients (the yardstick)
    count     harness.compute.flops.count_flops (strict, the default): what `harness measure` counts with
    torch     torch_forward_flops(math=True): torch's counter, the cross-check `harness measure
              check_torch=true` (and the zoo table) adds, a second forward pass

and prints the median of each and its ratio to the median forward pass, then the same for the fastest of
each (the least disturbed by other load). Ratios are only comparable within
one invocation on a quiet machine: the load average is printed before and after, so a busy run shows.
To compare with an earlier revision, run it with that revision's package first on PYTHONPATH, e.g.
`git archive REV harness conf models | tar -x -C /tmp/rev && PYTHONPATH=/tmp/rev python scripts/...`,
alternating the two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch


def seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vit_b_16")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    import torchvision

    import harness
    from harness.compute.flops import count_flops, torch_forward_flops

    warnings.filterwarnings("ignore")
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"harness from {os.path.dirname(harness.__file__)}"
    )
    for name in args.models.split(","):
        model = torchvision.models.get_model(name, weights=None).eval()
        x = torch.randn(1, 3, 224, 224)

        def forward(model=model, x=x) -> None:
            with torch.no_grad():
                model(x)

        steps = {
            "forward": forward,
            "count": lambda model=model, x=x: count_flops(model, x),
            "torch": lambda model=model, x=x: torch_forward_flops(model, x, math=True),
        }
        for step in steps.values():
            step()  # warm-up: allocations, first-call paths
        times: dict[str, list[float]] = {key: [] for key in steps}
        for i in range(args.rounds):
            for key in list(steps) if i % 2 == 0 else list(steps)[::-1]:
                times[key].append(seconds(steps[key]))
        for kind, pick in (("median", statistics.median), ("fastest", min)):
            best = {key: pick(values) for key, values in times.items()}
            shown = ", ".join(
                f"{key} {best[key] * 1e3:.1f} ms ({best[key] / best['forward']:.2f}×)" for key in steps
            )
            print(f"{name}: {shown}  [{kind} of {args.rounds}]", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
