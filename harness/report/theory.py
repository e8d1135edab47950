"""The theory experiment's summary: fitted data and compute exponents per arm, and the paper-style figure.

`python -m harness.report.theory DIR` reads DIR/runs.csv (the collected sweep) and DIR/fits/<x>_<model>/
fits.csv (one `harness fit` per arm and x, as scripts/theory.sh runs them), writes DIR/exponents.csv and
DIR/theory.png/.svg, and prints the exponents beside theory's.

Exponents: the fit of log10(RMSE) on log10(x) has slope b, and k = 1/|b| means x ∝ error^(−k):
an f-fold smaller error costs f^k times more x. Theory: RMSE ∝ n^(−1/2), so k = 2 on data for
every arm; a fixed-size model's training costs ∝ n, so k = 2 on compute too, while a model whose size grows
in proportion to the data costs ∝ n × size ∝ n², so k = 4 on compute (Thompson et al.).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.labels import label, model_colours
from harness.report.plots import save_figure
from harness.results import load

# The arms of the experiment (model names in the records), in plotting order, and their labels.
ARMS = MappingProxyType(
    {
        "linear_expert": "expert (relevant features, least squares)",
        "linear_lasso": "flexible + Lasso (all features)",
        "linear_flexible": "flexible (all features, least squares)",
        "mlp_ntk": "deep flexible (MLP, width = n, SGD)",
    }
)
# x columns fitted (their axis labels: harness.labels).
X_AXES = ("n_train", "network_operations")
GROWING = ("mlp_ntk",)  # arms whose size grows with n: compute ∝ n², theory's k = 4


def theory_k(model: str, x: str) -> float:
    """Theory's k (x ∝ error^−k) for an arm: 2 on data; on compute 2 for a fixed size, 4 for a growing one."""
    return 4.0 if x == "network_operations" and model in GROWING else 2.0


def exponents(directory: Path) -> pd.DataFrame:
    """One row per arm and x from the fits.csv files under directory/fits (the `poly` specification)."""
    rows = []
    for model in ARMS:
        for x in X_AXES:
            path = directory / "fits" / f"{x}_{model}" / "fits.csv"
            if not path.exists():
                continue
            fit = pd.read_csv(path)
            fit = fit[fit["spec"] == "poly"]
            if fit.empty:
                continue
            row = fit.iloc[0]
            rows.append(
                {
                    "model": model,
                    "x": x,
                    "slope": row["slope"],
                    "slope_ci_low": row["slope_ci_low"],
                    "slope_ci_high": row["slope_ci_high"],
                    "intercept": row["intercept"],
                    "k": row["k"],
                    "k_ci_low": row["k_ci_low"],
                    "k_ci_high": row["k_ci_high"],
                    "k_theory": theory_k(model, x),
                    "n_points": int(row["n"]),
                    "r2": row["r2"],
                }
            )
    if not rows:
        raise ConfigError(f"no fits under {directory / 'fits'}; run scripts/theory.sh (it runs harness fit)")
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The exponents as a Markdown table: slope and k with their 95% CIs, theory's k beside."""
    lines = [
        "| arm | x | slope [95% CI] | k = 1/\\|slope\\| [95% CI] | theory k | points | R² |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.model} | {row.x} | {row.slope:.3f} [{row.slope_ci_low:.3f}, {row.slope_ci_high:.3f}] "
            f"| {row.k:.2f} [{row.k_ci_low:.2f}, {row.k_ci_high:.2f}] | {row.k_theory:g} | {row.n_points} "
            f"| {row.r2:.3f} |"
        )
    return "\n".join(lines)


def figure(runs: pd.DataFrame, table: pd.DataFrame, out: Path, formats: tuple[str, ...] = ("png", "svg")):
    """Test RMSE against n and against training compute, log-log, one colour per arm: every run as a dot,
    the mean over seeds joined, and the fitted power law dashed (as in the paper's illustration)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.6), layout="constrained")
    FigureCanvasAgg(fig)  # an Agg canvas of its own: no display and no pyplot state
    axes = fig.subplots(1, len(X_AXES), sharey=True)
    done = runs[runs["status"] == "completed"]
    colours = model_colours(ARMS)  # each arm its colour in every figure (harness.labels)
    for model, arm_label in ARMS.items():
        colour = colours[model]
        arm = done[done["model"] == model]
        if arm.empty:
            continue
        for ax, x in zip(axes, X_AXES, strict=True):
            ax.scatter(arm[x], arm["test_error"], s=8, alpha=0.35, color=colour)
            # Mean over seeds per training size (x may itself be n_train, hence the copy under a new name).
            points = pd.DataFrame({"n_train": arm["n_train"], "at": arm[x], "test_error": arm["test_error"]})
            mean = points.groupby("n_train", observed=True)[["at", "test_error"]].mean().sort_values("at")
            fit = table[(table["model"] == model) & (table["x"] == x)]
            name = arm_label
            if not fit.empty:
                k, lo, hi = fit.iloc[0][["k", "k_ci_low", "k_ci_high"]]
                name = f"{arm_label}: k = {k:.1f} [{lo:.1f}, {hi:.1f}]"
                slope, intercept = fit.iloc[0][["slope", "intercept"]]
                grid = np.geomspace(mean["at"].min(), mean["at"].max(), 50)
                ax.plot(grid, 10**intercept * grid**slope, "--", color=colour, lw=1)
            ax.plot(mean["at"], mean["test_error"], "o-", color=colour, ms=4, label=name)
    for ax, x in zip(axes, X_AXES, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label(x))
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(  # below its panel, never over the points (constrained layout makes the room)
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            fontsize=7,
            title=f"x ∝ error^−k, theory k = {'2' if x == 'n_train' else '2 (fixed size), 4 (growing)'}",
            title_fontsize=7,
        )
    axes[0].set_ylabel("test RMSE against the optimal predictor")
    fig.suptitle("Expert vs flexible vs regularized vs deep: error against data and against compute")
    save_figure(fig, out, formats)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.report.theory DIR  (DIR holds runs.csv and fits/)", file=sys.stderr)
        sys.exit(2)
    directory = Path(args[0])
    try:
        table = exponents(directory)
        runs = load(directory / "runs.csv")
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    table.to_csv(directory / "exponents.csv", index=False)
    figure(runs, table, directory / "theory")
    print(markdown(table))


if __name__ == "__main__":
    main()
