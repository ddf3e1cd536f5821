"""Continual-learning metrics from the accuracy matrix, as the literature defines them.

R[i][j] is the test accuracy on experience j after training through experience i
(T x T, i, j = 0..T-1); b[j] is the accuracy on experience j of the freshly initialised
model. With T the number of experiences:

- average accuracy   A = mean_j R[T-1][j]                        (Lopez-Paz & Ranzato, 2017)
- forgetting         F = mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j])
                                                                  (Chaudhry et al., 2018, eq. 2-3)
- backward transfer  BWT = mean_{j<T-1} (R[T-1][j] - R[j][j])    (Lopez-Paz & Ranzato, 2017)
- forward transfer   FWT = mean_{j>0} (R[j-1][j] - b[j])          (Lopez-Paz & Ranzato, 2017)

Forgetting and the transfers need T >= 2; with one experience they are None, never 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Matrix = Sequence[Sequence[float]]


def _check(matrix: Matrix, random_init: Sequence[float] | None = None) -> int:
    t = len(matrix)
    if t == 0 or any(len(row) != t for row in matrix):
        raise ValueError(f"the accuracy matrix must be square and non-empty, got rows of lengths "
                         f"{[len(row) for row in matrix]}.")
    if random_init is not None and len(random_init) != t:
        raise ValueError(f"random_init needs one accuracy per experience ({t}), got {len(random_init)}.")
    return t


def average_accuracy(matrix: Matrix) -> float:
    _check(matrix)
    return statistics.fmean(matrix[-1])


def forgetting(matrix: Matrix) -> float | None:
    t = _check(matrix)
    if t < 2:
        return None
    return statistics.fmean(max(matrix[l][j] for l in range(t - 1)) - matrix[-1][j] for j in range(t - 1))


def backward_transfer(matrix: Matrix) -> float | None:
    t = _check(matrix)
    if t < 2:
        return None
    return statistics.fmean(matrix[-1][j] - matrix[j][j] for j in range(t - 1))


def forward_transfer(matrix: Matrix, random_init: Sequence[float]) -> float | None:
    t = _check(matrix, random_init)
    if t < 2:
        return None
    return statistics.fmean(matrix[j - 1][j] - random_init[j] for j in range(1, t))


def continual_metrics(matrix: Matrix, random_init: Sequence[float]) -> dict[str, float | None]:
    """All four metrics of one accuracy matrix (and the random-init accuracies)."""
    return {
        "average_accuracy": average_accuracy(matrix),
        "forgetting": forgetting(matrix),
        "bwt": backward_transfer(matrix),
        "fwt": forward_transfer(matrix, random_init),
    }
