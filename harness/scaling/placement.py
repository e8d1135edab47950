"""Where a model sits against the fitted trends: how much compute the field would spend for its error.

For each reference survey with a poly fit on forward-pass FLOPs (the paper's ImageNet table, torchvision's
zoo with and without extra data), the fitted line is inverted at the model's error (`extrapolate`, with its
95% calibration interval) and divided by the model's forward FLOPs: `efficiency` > 1 means the model reaches
its error with that many times less compute than the trend predicts, < 1 that it spends more.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.errors import ConfigError
from harness.scaling import paper, reference, zoo
from harness.scaling.extrapolate import extrapolate
from harness.scaling.regressions import LOG_ERROR, Plan, fit_plan

DEFAULT_REFERENCES = ("imagenet", zoo.ZOO)


def _offered() -> list[str]:
    """The references with a poly fit on forward FLOPs: the paper's benchmarks that have one, and the zoo."""
    ones = [n for n in reference.NAMES if any(p.x == zoo.X and p.spec == "poly" for p in paper.plans(n))]
    return [*ones, zoo.ZOO]


def check(error, references: Sequence[str]) -> None:
    """Refuse, in one line and before any work, an error outside (0, 1) or a reference without such a fit."""
    try:
        inside = 0.0 < float(error) < 1.0
    except (TypeError, ValueError):
        inside = False
    if not inside:
        raise ConfigError(f"error={error} must be a top-1 error strictly between 0 and 1, e.g. error=0.2")
    offered = _offered()
    unknown = [str(n) for n in references if str(n) not in offered]
    if unknown or not references:
        raise ConfigError(
            f"place_on={list(references)}: {', '.join(unknown) or 'none given'} has no fit on forward-pass "
            f"FLOPs; use {', '.join(offered)}"
        )


def forward_fits(name: str, *, level: float = 0.95) -> list:
    """The poly fits on forward FLOPs of reference `name` (checked by `check`)."""
    poly = Plan("poly", LOG_ERROR, zoo.X)
    if name == zoo.ZOO:
        tables = [(n, t) for n, _, t in zoo.surveys() if n != zoo.PAPER]
    else:
        tables = [(name, reference.load(name))]
    return [fit_plan(table, poly, benchmark=n, level=level) for n, table in tables]


def place(
    flops_forward: float,
    error: float,
    references: Sequence[str] = DEFAULT_REFERENCES,
    *,
    level: float = 0.95,
) -> list[dict]:
    """One row per reference fit: the forward FLOPs its trend predicts at `error`, with its CI, and that
    divided by `flops_forward` (`efficiency`: how many times less compute than the field's trend)."""
    check(error, references)
    if not float(flops_forward) > 0.0:
        raise ConfigError(f"the model's forward FLOPs ({flops_forward}) must be positive to place it")
    fits = [fit for name in references for fit in forward_fits(str(name), level=level)]
    rows = []
    for fit in fits:
        (row,) = extrapolate(fit, [float(error)], level=level, conversions=())
        rows.append(
            {
                "reference": fit.benchmark,
                "error": float(error),
                "flops_forward": float(flops_forward),
                "trend_flops": row["x_needed"],
                "trend_flops_ci_low": row["x_ci_low"],
                "trend_flops_ci_high": row["x_ci_high"],
                "efficiency": row["x_needed"] / float(flops_forward),
                "efficiency_ci_low": row["x_ci_low"] / float(flops_forward),
                "efficiency_ci_high": row["x_ci_high"] / float(flops_forward),
                "slope": fit.row["slope"],
                "n": fit.row["n"],
            }
        )
    return rows
