"""Input checks shared by the classification models (RAM, DRAM and the FC/conv baselines) and by
the drawing models (DooD and the AIR baselines)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_classification_batch", "check_image_batch"]


def check_image_batch(images: Tensor, shape: tuple[int, int, int], model: str) -> None:
    """Raise ``ValueError`` (naming ``model``) unless ``images`` is ``(B, *shape)``."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{model}: images must have shape (B, {', '.join(map(str, shape))}), "
            f"found {tuple(images.shape)}"
        )


def check_classification_batch(
    images: Tensor, labels: Tensor | None, shape: tuple[int, int, int], num_classes: int
) -> None:
    """Raise ``ValueError`` unless ``images`` is float ``(B, *shape)`` and ``labels`` (if given)
    int64 ``(B,)`` in ``[0, num_classes)``."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(
            f"images: expected shape (B, {', '.join(map(str, shape))}), found {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(f"images: expected a floating-point tensor, found {images.dtype}")
    if labels is None:
        return
    if labels.shape != images.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(
            f"labels: expected int64 of shape ({images.shape[0]},), found {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels: expected classes in [0, {num_classes}), found [{low}, {high}]"
            )
