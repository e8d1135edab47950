"""Training FLOPs of closed-form and coordinate-descent solvers, by formula (1 FLOP = one add or multiply).

A solver that is not gradient training has no forward/backward step to count, so its cost is the
arithmetic of its algorithm, in the standard operation counts (Golub & Van Loan, Matrix Computations,
4th ed., §1.1, §3.1, §4.2): a dense product of an (a×b) and a (b×c) matrix is 2abc FLOPs (abc
multiply-adds, the paper's 2-FLOPs-per-MAC convention), a Cholesky factorization of a k×k matrix is k³/3,
a triangular solve k². Products are counted dense, as computed: no saving for the symmetry of XᵀX.

Every function returns (flops, formula); the formula, with the sizes filled in, goes into the run record's
flops_train_method so a reader can check the figure.
"""

from __future__ import annotations


def centering_flops(n: int, d: int) -> float:
    """Column means of X (n×d) and y, then subtracting them: 2nd + 2n."""
    return 2.0 * n * d + 2.0 * n


def least_squares_flops(n: int, d: int) -> tuple[float, str]:
    """Least squares with an intercept on n samples of d features: centre X and y, then solve.

    n > d (overdetermined) — normal equations: XᵀX (2nd²), Xᵀy (2nd), Cholesky (d³/3), two triangular
    solves (2d²), intercept ȳ − x̄·β (2d).
    n <= d (underdetermined) — no centring: the intercept is an extra column of ones, A = [X 1], and the
    minimum-norm solution is Aᵀ(AAᵀ)⁻¹y: AAᵀ (2n²(d+1)), Cholesky (n³/3), two triangular solves (2n²),
    Aᵀα (2n(d+1)).
    """
    if n > d:
        flops = centering_flops(n, d) + 2.0 * n * d * d + 2.0 * n * d + d**3 / 3.0 + 2.0 * d * d + 2.0 * d
        formula = "2nd+2n (centre) + 2nd² (XᵀX) + 2nd (Xᵀy) + d³/3 (Cholesky) + 2d² (solves) + 2d"
    else:
        flops = 2.0 * n * n * (d + 1) + n**3 / 3.0 + 2.0 * n * n + 2.0 * n * (d + 1)
        formula = "A=[X 1]: 2n²(d+1) (AAᵀ) + n³/3 (Cholesky) + 2n² (solves) + 2n(d+1) (Aᵀα)"
    return flops, f"least squares, n={n}, d={d}: {formula}"


def lasso_flops(n: int, d: int, sweeps: int) -> tuple[float, str]:
    """scikit-learn's Lasso with a precomputed Gram matrix (cd_fast.enet_coordinate_descent_gram).

    Exact part: centre X and y (2nd + 2n), XᵀX (2nd²), Xᵀy (2nd). Then `sweeps` (the estimator's n_iter_)
    passes of coordinate descent over the d coordinates; a coordinate costs at most 2d + 8 (its update from
    the Gram row, and an axpy of that row into Qw when it changes), and a sweep at most 8d more for the
    duality-gap check: ≤ sweeps·(2d² + 16d), an upper bound, since screened-out or unchanged coordinates
    skip the axpy. For n >> sweeps the exact Gram term dominates.
    """
    flops = centering_flops(n, d) + 2.0 * n * d * d + 2.0 * n * d + sweeps * (2.0 * d * d + 16.0 * d)
    formula = (
        f"lasso (Gram coordinate descent), n={n}, d={d}, sweeps={sweeps}: 2nd+2n (centre) + 2nd² (XᵀX) "
        "+ 2nd (Xᵀy) + sweeps·(2d²+16d) (coordinate sweeps, upper bound)"
    )
    return flops, formula
