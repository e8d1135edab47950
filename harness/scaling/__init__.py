"""The paper's scaling regressions, on its own reference data and on our runs, and what lies beyond them.

`reference` (the authors' tables), `regressions` (OLS / quantile fits with CIs and k), `imputation`
(hardware burden from network operations), `paper` (the specifications per benchmark), `runs` (our run
records as regression data), `extrapolate` (compute for a target error), `parametric` and `lbfgs`
(L(N, D) with bootstrap CIs), `holdout` (out-of-sample check), `analysis` (all of it, per benchmark),
`zoo` (the paper's ImageNet specs on torchvision's zoo), `placement` (a model against the fitted trends).
"""

from harness.scaling.analysis import (
    BenchmarkAnalysis,
    analyse_reference,
    analyse_runs,
    analyse_torchvision,
)

__all__ = ["BenchmarkAnalysis", "analyse_reference", "analyse_runs", "analyse_torchvision"]
