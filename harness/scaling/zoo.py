"""The paper's ImageNet specifications on a second survey: torchvision's model zoo, FLOPs counted by us.

Both surveys are fitted on operations per forward pass, the one compute column they share: the zoo's is
our count (2 × MACs at the weights' evaluation crop), the paper's its `flops` (else 2 × `multiadds`) as
each paper reported it. The zoo's metadata has no epochs or training-set sizes, hence no network
operations, so the paper's other ImageNet specs (exp, year, quantile, fitted on network operations in the
paper) are refitted here on forward FLOPs for both surveys, like against like. The zoo is fitted with and
without the weights pretrained on extra data (SWAG).
"""

from __future__ import annotations

from types import MappingProxyType

import pandas as pd

from harness.scaling import paper, reference
from harness.scaling.regressions import ERROR, LOG_ERROR, Plan

X = "ops_forward_pass"
# The analyses `harness fit reference=torchvision` returns, in the order they are printed.
PAPER, ZOO, ZOO_IMAGENET_ONLY = "imagenet_forward", "torchvision", "torchvision_imagenet1k"


def plans(*, quantile: float = 0.1, year_base: int = 2012) -> tuple[Plan, ...]:
    """The paper's ImageNet specs that apply to a table of forward FLOPs, all on forward FLOPs."""
    return (
        Plan("poly", LOG_ERROR, X),
        Plan("exp", ERROR, X),
        Plan("poly_year", LOG_ERROR, X, year_base=year_base),
        Plan(paper.quantile_spec(quantile), LOG_ERROR, X, quantile=quantile),
    )


def surveys() -> tuple[tuple[str, str, pd.DataFrame], ...]:
    """(name, label, table): the paper's ImageNet survey, the zoo, the zoo without extra data."""
    return (
        (PAPER, "the paper's ImageNet survey, forward FLOPs as published", reference.load("imagenet")),
        (ZOO, "torchvision zoo, all weights, our forward FLOPs", reference.load_torchvision()),
        (
            ZOO_IMAGENET_ONLY,
            "torchvision zoo, ImageNet-1K only (no SWAG)",
            reference.load_torchvision(extra_data=False),
        ),
    )


# What each survey's rows are, for the report.
NOTES = MappingProxyType(
    {
        PAPER: "The paper's ImageNet table (reference/SOURCE.md): forward-pass FLOPs as each paper "
        "reported them (`flops`, else 2 × `multiadds`); rows without them are dropped (N dropped). "
        "Year = publication year.",
        ZOO: "Every trained weights of torchvision's classifiers (reference/torchvision.csv, built by "
        "scripts/build_torchvision_reference.py): top-1 error from the weights' metadata, forward FLOPs "
        "counted by harness at the weights' evaluation crop; year = the architecture's arXiv paper. "
        "Includes the SWAG weights, pretrained on 3.6 billion Instagram images.",
        ZOO_IMAGENET_ONLY: "The same zoo without the SWAG weights: trained on ImageNet-1K alone.",
    }
)
