"""Inception-v3 features from weights a user already has (``--features PATH``; DooD Fig. 6's FID).

Nothing is downloaded: ``PATH`` is a state dict of torchvision's ``inception_v3`` (e.g.
``inception_v3_google-0cc3c7bd.pth``, 1000 classes, or pytorch-fid's ``pt_inception-2015-12-05``
weights, 1008 classes, whose parameter names are torchvision's), read with
``weights_only=True``; the number of classes and the auxiliary head are read off the weights. The
features are the 2048 pooled activations before the classifier. Images (grey, ``[0, 1]``) are
resized to 299×299 (bilinear), repeated to 3 channels and mapped to ``[−1, 1]``, the input that
both weight files expect. pytorch-fid's network also changes a few pooling layers, so numbers
from these weights are close to, not identical with, pytorch-fid's FID.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["INCEPTION_SIZE", "InceptionFeatures", "InceptionUnavailable", "load_inception"]

INCEPTION_SIZE = 299
_BATCH = 50
_INSTALL = 'pip install torchvision (a build matching your torch; or pip install "pyro-draw[fid]")'


class InceptionUnavailable(ValueError):
    """``--features`` cannot be used here: no torchvision, or no usable weights file."""


def _torchvision_models() -> Any:
    try:
        return importlib.import_module("torchvision.models")
    except ImportError as exc:
        raise InceptionUnavailable(
            f"--features: Inception-v3 features need torchvision, which is not importable "
            f"({exc}); {_INSTALL}, or use the project's feature network (omit --features)"
        ) from None


def load_inception(path: str | Path) -> nn.Module:
    """torchvision's Inception-v3 with the weights in ``path`` (its classifier replaced by the
    identity, eval mode); :class:`InceptionUnavailable` names what is missing."""
    path = Path(path)
    if not path.is_file():
        raise InceptionUnavailable(
            f"--features: no weights file {path} (Inception-v3 weights are not downloaded; "
            "give a torchvision or pytorch-fid state dict you have)"
        )
    models = _torchvision_models()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  unpickling errors come in many types
        raise InceptionUnavailable(f"--features: cannot read {path} ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise InceptionUnavailable(
            f"--features: {path} is not an Inception-v3 state dict (no 'fc.weight')"
        )
    aux = any(key.startswith("AuxLogits.") for key in state)
    net = models.inception_v3(
        weights=None,
        aux_logits=aux,
        num_classes=int(state["fc.weight"].shape[0]),
        init_weights=False,
        transform_input=False,
    )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise InceptionUnavailable(
            f"--features: {path} does not fit torchvision's inception_v3 ({exc})"
        ) from None
    net.fc = nn.Identity()
    return net.eval()


def inception_input(images: Tensor) -> Tensor:
    """``(N, 1 | 3, H, W)`` in ``[0, 1]`` → ``(N, 3, 299, 299)`` in ``[−1, 1]``."""
    x = F.interpolate(images.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.clamp(0.0, 1.0) * 2.0 - 1.0


class InceptionFeatures:
    """2048-d pool features of Inception-v3, as ``(N, 2048)`` float64."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.net = load_inception(self.path)
        self.name = "inception-v3"

    def __call__(self, images: Tensor) -> np.ndarray:
        with torch.no_grad():
            parts = [self.net(inception_input(chunk)) for chunk in images.split(_BATCH)]
        return torch.cat(parts).double().numpy()

    def describe(self) -> dict[str, Any]:
        return {"network": "inception-v3", "path": str(self.path), "input": "299x299, [-1, 1]"}
