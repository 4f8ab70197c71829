"""The Fréchet distance between two sets of feature vectors (Heusel et al. 2017; DooD Fig. 6).

Each set is summarised by the mean ``μ`` and covariance ``Σ`` of its features (a Gaussian fit);
the squared Fréchet (2-Wasserstein) distance between the two Gaussians is

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}).

``(Σ₁ Σ₂)^{1/2}`` comes from :func:`scipy.linalg.sqrtm`. Two numerical cases are handled as the
reference implementations (TTUR, pytorch-fid) handle them:

* *a singular product* (e.g. fewer vectors than dimensions, or a feature that is constant, as
  a ReLU unit that never fires): when ``sqrtm`` warns that the product is singular or returns
  non-finite values, ``eps · I`` is added to both covariances and the root is taken again
  (``eps = 1e-6`` by default); the result says that the offset was used (``eps_offset``);
* *tiny imaginary parts*: ``sqrtm`` of a real product of two PSD matrices is real in exact
  arithmetic, but rounding gives it imaginary parts of order 1e-10; they are dropped when the
  largest imaginary part on the diagonal is below ``imag_tol`` (1e-3, pytorch-fid's), and if not,
  the ``eps`` offset is tried once more before a :class:`ValueError` says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import LinAlgWarning, sqrtm

__all__ = ["FeatureStatistics", "feature_statistics", "frechet_distance", "frechet_from_statistics"]

DEFAULT_EPS = 1e-6
IMAG_TOL = 1e-3


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``count`` feature vectors."""

    mean: np.ndarray
    cov: np.ndarray
    count: int


def feature_statistics(features: ArrayLike) -> FeatureStatistics:
    """Mean and unbiased covariance (``ddof = 1``) of ``(N, D)`` features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features: expected an (N, D) array, found shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"features: a covariance needs at least 2 vectors, found {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("features: found NaN or inf values")
    return FeatureStatistics(x.mean(0), np.atleast_2d(np.cov(x, rowvar=False)), int(x.shape[0]))


def _sqrt_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(sqrtm(a @ b), whether scipy warned that the product is singular)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LinAlgWarning)
        root = np.asarray(sqrtm(a @ b))
    return root, any(issubclass(w.category, LinAlgWarning) for w in caught)


def frechet_from_statistics(
    a: FeatureStatistics,
    b: FeatureStatistics,
    *,
    eps: float = DEFAULT_EPS,
    imag_tol: float = IMAG_TOL,
) -> dict[str, float | bool]:
    """``{"frechet_distance": d², "mean_term": ‖μ₁ − μ₂‖², "trace_term": Tr(…),
    "eps_offset": whether Σ + eps·I was needed}`` (module docstring for the numerical cases)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(
            f"feature dimensions differ: {a.mean.shape[0]} and {b.mean.shape[0]} "
            "(compute both sets with the same feature network)"
        )
    s1, s2 = a.cov, b.cov
    root, singular = _sqrt_product(s1, s2)
    offset = False
    bad = singular or not np.isfinite(root).all()
    if bad or (np.iscomplexobj(root) and np.abs(np.diagonal(root).imag).max() > imag_tol):
        eye = np.eye(s1.shape[0]) * eps
        root, _ = _sqrt_product(s1 + eye, s2 + eye)
        offset = True
    if not np.isfinite(root).all():
        raise ValueError(f"(Σ₁ Σ₂)^(1/2) is not finite even with Σ + {eps:g}·I")
    if np.iscomplexobj(root):
        imag = float(np.abs(np.diagonal(root).imag).max())
        if imag > imag_tol:
            raise ValueError(
                f"(Σ₁ Σ₂)^(1/2) has an imaginary part of {imag:.3g} on its diagonal (> "
                f"{imag_tol:g}): the covariances are not positive semi-definite"
            )
        root = root.real
    diff = a.mean - b.mean
    mean_term = float(diff @ diff)
    trace_term = float(np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))
    return {
        "frechet_distance": mean_term + trace_term,
        "mean_term": mean_term,
        "trace_term": trace_term,
        "eps_offset": offset,
    }


def frechet_distance(
    features_a: ArrayLike, features_b: ArrayLike, *, eps: float = DEFAULT_EPS
) -> float:
    """The squared Fréchet distance between the Gaussian fits of two ``(N, D)`` feature sets."""
    result = frechet_from_statistics(
        feature_statistics(features_a), feature_statistics(features_b), eps=eps
    )
    return float(result["frechet_distance"])
