"""Ranking metrics of the leave-one-out protocol (He et al., "Neural Collaborative Filtering", 2017).

Each test user has one held-out item (the *positive*) and ``N`` sampled items the user never
rated (the *negatives*, 99 in the paper). A model scores all ``1 + N`` candidates; the
positive's position in that list (0 = ranked first) gives

- HitRatio@k: 1 if the position is below ``k``, else 0;
- NDCG@k: ``1 / log2(position + 2)`` if the position is below ``k``, else 0 (one relevant item,
  so the ideal DCG is 1);

each averaged over the users. A negative that scores as high as the positive is a tie; ties
are broken at random, and the functions return the *expected* value over those draws (a
model that gives every item the same score gets HitRatio@k ``k / (1 + N)``, as random
guessing does). :func:`workbench.datasets.ratings.negative_samples` lays the candidates out
in blocks, so the scores reshape to ``(users, 1 + N)`` with the positive first::

    scores = estimator.predict(test_pairs[["user", "item"]].to_numpy()).compute().reshape(-1, 100)
    hit_ratio_at_k(scores[:, 0], scores[:, 1:], k=10)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workbench.arguments import check_positive_int

__all__ = ["hit_ratio_at_k", "ndcg_at_k"]


def hit_ratio_at_k(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int) -> float:
    """The share of users whose held-out item ranks in the top ``k`` of its candidates.

    Args:
        positive_scores: ``(users,)`` the score of each user's held-out item.
        negative_scores: ``(users, N)`` the scores of each user's sampled negatives.
        k: the length of the recommendation list.

    Returns:
        The mean hit ratio, ties broken at random (expected value).
    """
    return _expected_gain(positive_scores, negative_scores, k, lambda positions: np.ones(len(positions)))


def ndcg_at_k(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int) -> float:
    """The mean normalised discounted cumulative gain of the held-out items in the top ``k``.

    Args:
        positive_scores, negative_scores, k: as for :func:`hit_ratio_at_k`.

    Returns:
        The mean of ``1 / log2(position + 2)`` (0 beyond ``k``), ties broken at random.
    """
    return _expected_gain(positive_scores, negative_scores, k, lambda positions: 1.0 / np.log2(positions + 2.0))


def _expected_gain(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int,
                   gain: Callable[[np.ndarray], np.ndarray]) -> float:
    """The mean over users of ``gain(position)`` for positions below ``k``, expected over random tie-breaks.

    A positive with ``above`` negatives scoring higher and ``tied`` scoring the same lands on
    each position ``above .. above + tied`` with equal probability.
    """
    positive, negative = _checked_scores(positive_scores, negative_scores)
    check_positive_int("k", k)
    above = (negative > positive[:, None]).sum(axis=1)
    tied = (negative == positive[:, None]).sum(axis=1)
    positions = np.arange(negative.shape[1] + 1)
    gains = np.where(positions < k, gain(positions), 0.0)
    reachable = (positions >= above[:, None]) & (positions <= (above + tied)[:, None])
    return float(np.mean((reachable * gains).sum(axis=1) / (tied + 1)))


def _checked_scores(positive_scores: np.ndarray, negative_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scores as float arrays of shapes ``(users,)`` and ``(users, N)``, or a ValueError saying why not."""
    positive = np.asarray(positive_scores, dtype=np.float64)
    negative = np.asarray(negative_scores, dtype=np.float64)
    if positive.ndim != 1 or negative.ndim != 2 or len(negative) != len(positive):
        raise ValueError(f"expected positive_scores of shape (users,) and negative_scores of shape (users, N), "
                         f"got {positive.shape} and {negative.shape}")
    if not len(positive) or not negative.shape[1]:
        raise ValueError(f"need at least one user and one negative, got shapes {positive.shape} and {negative.shape}")
    if np.isnan(positive).any() or np.isnan(negative).any():
        raise ValueError("the scores hold NaN values")
    return positive, negative
