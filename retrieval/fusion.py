"""Fusing ranked lists."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Fuse ranked lists by weighted reciprocal rank, ``sum(w / (k + rank))``, best first.

    A list that is empty simply contributes nothing, so one side failing falls back to the other.
    Ties keep the order in which keys were first seen.
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def convex_fusion(
    scored: Sequence[Sequence[tuple[K, float]]],
    weights: Sequence[float] | None = None,
    normalise: str = "minmax",
) -> list[tuple[K, float]]:
    """Fuse scored candidate lists by a weighted sum of per-list normalised scores, best first.

    Each list's scores are rescaled to [0, 1] (``"minmax"``) or standardised (``"z"``) over that list, and a
    key absent from a list gets that list's lowest normalised value. An empty list contributes nothing, so
    one side failing falls back to the other. Ties keep the order in which keys were first seen.

    Args:
        scored: per retriever, (key, raw score) pairs, best first.
        weights: one weight per list (default equal).
        normalise: ``"minmax"`` or ``"z"``.

    """
    weights = list(weights) if weights is not None else [1.0] * len(scored)
    order: dict[K, None] = {}
    normalised: list[tuple[dict[K, float], float, float]] = []
    for items, weight in zip(scored, weights, strict=True):
        if not items:
            continue
        values = np.asarray([score for _, score in items], dtype=np.float64)
        if normalise == "z":
            spread = values.std()
            scaled = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
        elif normalise == "minmax":
            spread = values.max() - values.min()
            scaled = (values - values.min()) / spread if spread > 0 else np.ones_like(values)
        else:
            raise ValueError(f"unknown normalisation {normalise!r}")
        table = {key: float(value) for (key, _), value in zip(items, scaled, strict=True)}
        normalised.append((table, weight, float(scaled.min())))
        for key, _ in items:
            order.setdefault(key, None)
    fused = {key: sum(weight * table.get(key, floor) for table, weight, floor in normalised) for key in order}
    return sorted(fused.items(), key=lambda item: -item[1])
