"""Seeded, class-balanced, nested subsets of a labelled set.

Rule: draw one seeded random permutation of the samples; the sample that is the i-th (0-based) of its
class c in that permutation gets priority i / count_c, and samples are ranked by priority (ties broken by
their position in the permutation). A subset of size n is the first n of that ranking. Hence:

* exact size n; class c contributes ceil(t * count_c) samples for a common threshold t (Adams
  apportionment), never more than the ceiling of its proportional share n * count_c / N;
* every class gets a sample once n >= number of classes (each class's first sample has priority 0);
* nested: for one seed, a smaller subset is a prefix of the same ranking, so it lies inside a larger one;
* reproducible: only the labels and the seed matter, never the global RNG state.
"""

from __future__ import annotations

import numpy as np


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of `labels` ranked so that every prefix is as class-balanced as possible (see module doc)."""
    labels = np.asarray(labels)
    permutation = np.random.default_rng(seed).permutation(len(labels))
    permuted = labels[permutation]
    priority = np.empty(len(labels), dtype=np.float64)
    for cls in np.unique(permuted):
        members = np.flatnonzero(permuted == cls)
        # Equal rationals i/count divide to identical floats, so equal shares tie exactly and the
        # permutation position decides.
        priority[members] = np.arange(len(members)) / len(members)
    # lexsort sorts by the last key first: priority, then position in the permutation.
    return permutation[np.lexsort((np.arange(len(labels)), priority))]


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset of size n; the same seed gives nested subsets as n grows."""
    if not 0 <= n <= len(labels):
        raise ValueError(f"subset size {n} is outside [0, {len(labels)}]")
    return np.sort(stratified_order(labels, seed)[:n])


def nested_subset(size: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a plain seeded subset of size n of range(size), for targets without classes
    (regression): the first n of one seeded permutation, so the same seed gives nested subsets."""
    if not 0 <= n <= size:
        raise ValueError(f"subset size {n} is outside [0, {size}]")
    return np.sort(np.random.default_rng(seed).permutation(size)[:n])


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced (train, test) sorted index arrays for sets that ship without an official split."""
    n_test = max(1, round(test_fraction * len(labels)))
    order = stratified_order(labels, seed)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def holdout_split(
    labels: np.ndarray | None, size: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held) sorted index arrays of range(size): `fraction` of it (rounded, at least one sample) held
    out, class-balanced when `labels` are given (as stratified_split), else a plain seeded draw."""
    if labels is not None:
        return stratified_split(labels, fraction, seed)
    n_held = max(1, round(fraction * size))
    order = np.random.default_rng(seed).permutation(size)
    return np.sort(order[n_held:]), np.sort(order[:n_held])
