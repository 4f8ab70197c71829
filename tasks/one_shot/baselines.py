"""Model-free one-shot classifiers: the official Modified Hausdorff baseline and pixel-space NN.

A classifier maps a :class:`~tasks.one_shot.runs.OneShotRun` to a ``(Q, S)`` score matrix,
higher = more alike; each query is assigned the support with the highest score.

* ``mhd`` — the baseline of the official demo (GitHub brendenlake/omniglot,
  ``python/one-shot-classification/demo_classification.py`` and ``demo_classification.m``;
  Dubuisson & Jain 1994): the ink pixels of each 105×105 image as a point set (row, column),
  centred on its mean; MHD(A, B) = max(mean_a min_b |a − b|, mean_b min_a |a − b|); the score is
  −MHD. The demo states 38.8% error over the 20 runs (exactly 38.75%).
* ``pixel`` — nearest neighbour in pixel space on the 50×50 grey images that DooD sees, by
  cosine similarity. Cosine rather than L2: the L2 distance ``|q|² + |s|² − 2 q·s`` favours
  supports with little ink whatever their shape, cosine compares the shapes of the ink only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from tasks.one_shot.runs import OneShotRun

__all__ = [
    "BASELINES",
    "Scorer",
    "ink_points",
    "mhd_scores",
    "modified_hausdorff",
    "pixel_scores",
]

#: ``scorer(run) -> (Q, S)`` scores, higher = the query is more likely of that support's class
Scorer = Callable[[OneShotRun], Tensor]


def ink_points(binary: Tensor) -> list[Tensor]:
    """The ink pixels of ``(N, 1, H, W)`` (or ``(N, H, W)``) bool images as ``(n_i, 2)`` float64
    (row, column) point sets centred on their means, as the demo's ``load_img_as_points``."""
    images = binary.reshape(binary.shape[0], *binary.shape[-2:])
    points = []
    for image in images:
        found = image.nonzero().to(torch.float64)
        points.append(found - found.mean(0) if found.shape[0] else found)
    return points


def _mean_nearest(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
    """``(len(targets), len(sources))``: for each target set, the mean over each source set's
    points of the distance to the nearest point of the target (``nan`` for an empty source).

    One exact KD-tree per target, queried with the points of all sources at once."""
    sizes = np.array([len(p) for p in sources])
    owner = np.repeat(np.arange(len(sources)), sizes)
    points = np.concatenate(list(sources)) if len(sources) else np.zeros((0, 2))
    out = np.full((len(targets), len(sources)), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, target in enumerate(targets):
            if len(target) and len(points):
                distance, _ = cKDTree(target).query(points)
                out[j] = np.bincount(owner, weights=distance, minlength=len(sources)) / sizes
    return out


def modified_hausdorff(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """``(len(a), len(b))`` Modified Hausdorff distances between 2-d point sets (Dubuisson &
    Jain 1994, as the official demo): max(mean_a min_b |a − b|, mean_b min_a |a − b|).

    Exact nearest neighbours by KD-tree (:mod:`scipy.spatial`, via arviz) rather than the demo's
    brute-force ``cdist``, which is ~30× slower here for the same distances; the loops run over
    point sets (one tree each), never over pairs. A pair with an empty set has distance ``inf``.
    """
    sets_a = [p.detach().cpu().double().numpy() for p in a]
    sets_b = [p.detach().cpu().double().numpy() for p in b]
    a_to_b = _mean_nearest(sets_a, sets_b).T  # [i, j]: mean over a_i of min over b_j
    b_to_a = _mean_nearest(sets_b, sets_a)  # [i, j]: mean over b_j of min over a_i
    distance = np.maximum(a_to_b, b_to_a)
    empty = (np.array([len(p) for p in sets_a])[:, None] == 0) | (
        np.array([len(p) for p in sets_b])[None, :] == 0
    )
    distance[np.isnan(distance) | empty] = np.inf
    return torch.from_numpy(distance)


def mhd_scores(run: OneShotRun) -> Tensor:
    """−MHD between every query and support of ``run`` (the official demo's classifier)."""
    queries, supports = ink_points(run.queries_binary), ink_points(run.supports_binary)
    return -modified_hausdorff(queries, supports)


def pixel_scores(run: OneShotRun) -> Tensor:
    """Cosine similarity of the flattened 50×50 grey images (ink = 1) of queries and supports."""
    q = torch.nn.functional.normalize(run.queries.flatten(1).double(), dim=1)
    s = torch.nn.functional.normalize(run.supports.flatten(1).double(), dim=1)
    return q @ s.T


BASELINES: dict[str, Scorer] = {"mhd": mhd_scores, "pixel": pixel_scores}
