"""Hardware burden where a paper did not report it: predicted from network operations, as the authors did.

`log10(hardware_burden) ~ log10(network_operations)` is fitted on the rows that have both (its N and R² are
reported), or taken from fixed coefficients (the authors fixed them for COCO, which has no row with both).
The result, measured where known and imputed elsewhere, is `hardware_burden_consolidated`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from harness.errors import ConfigError
from harness.scaling.regressions import MIN_POINTS, FitResult, coefficient_row, design

CONSOLIDATED = "hardware_burden_consolidated"
IMPUTED = "burden_imputed"
_SOURCE, _TARGET = "network_operations", "hardware_burden"


def consolidate_burden(
    frame: pd.DataFrame, *, benchmark: str, fixed: Sequence[float] | None = None, level: float = 0.95
) -> tuple[pd.DataFrame, FitResult]:
    """`frame` with `hardware_burden_consolidated` and `burden_imputed` added, and the imputation's fit row.

    `fixed` = (slope, intercept) of log10(hardware_burden) on log10(network_operations) skips the fit.
    """
    burden, ops = frame[_TARGET], frame[_SOURCE]
    to_impute = burden.isna() & ops.notna()
    both = frame.dropna(subset=[_TARGET, _SOURCE])
    row: dict[str, Any] = {
        "benchmark": benchmark,
        "spec": "imputation",
        "x": _SOURCE,
        "y": f"log10({_TARGET})",
        "formula": f"log10({_TARGET}) ~ log10({_SOURCE})",
    }
    model = None
    if fixed is None:
        if len(both) < MIN_POINTS:
            raise ConfigError(
                f"{benchmark} imputation: {len(both)} rows have both {_TARGET} and {_SOURCE}, at least "
                f"{MIN_POINTS} needed; give fixed coefficients (imputation.{benchmark}=[slope,intercept])"
            )
        exog = design(np.log10(both[_SOURCE].to_numpy(dtype=float)))
        model = sm.OLS(np.log10(both[_TARGET].to_numpy(dtype=float)), exog).fit()
        slope, intercept = float(model.params[1]), float(model.params[0])
        row.update(
            method="ols",
            **coefficient_row(model, level=level, log_form=False),
            n=len(both),
            n_dropped=len(frame) - len(both),
            r2=float(model.rsquared),
            note=f"fitted on the {len(both)} rows with both; {int(to_impute.sum())} rows imputed",
        )
    else:
        slope, intercept = (float(v) for v in fixed)
        row.update(
            method="fixed",
            slope=slope,
            intercept=intercept,
            n=0,
            n_dropped=len(frame),
            r2=math.nan,
            note=f"fixed coefficients from the config; {int(to_impute.sum())} rows imputed",
        )
    out = frame.copy()
    predicted = np.power(10.0, intercept + slope * np.log10(ops.where(to_impute).to_numpy(dtype=float)))
    out[CONSOLIDATED] = burden.where(~to_impute, predicted)
    out[IMPUTED] = to_impute
    return out, FitResult(benchmark, None, row, model, both.reset_index(drop=True))
