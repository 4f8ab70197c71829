"""The project's own feature network for Fréchet distances (DooD Fig. 6 uses Inception-v3, whose
weights cannot be downloaded here): a small CNN classifier trained on the dataset's training
split at the model's image size; its penultimate layer (``feature_size`` ReLU units) gives the
features.

:func:`train_feature_net` trains it for a step budget (Adam, cross-entropy; seeded) and measures
its held-out accuracy; :func:`save_feature_net` writes it with that accuracy and the data it
was trained on into a small file that :func:`load_feature_net` reads back with
``weights_only=True``. Which labels each dataset gives is :mod:`tasks.quality.data`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from inference.checkpoint import write_atomic
from tasks.data.core import binarize

__all__ = [
    "FEATURE_NET_FORMAT",
    "ClassifierFeatures",
    "FeatureCNN",
    "FeatureNetError",
    "LabelledImages",
    "classifier_accuracy",
    "load_feature_net",
    "save_feature_net",
    "train_feature_net",
]

FEATURE_NET_FORMAT = "pyro-draw-feature-net"
_VERSION = 1
_EVAL_BATCH = 500


class FeatureNetError(ValueError):
    """A feature-network file is missing, not one, or does not fit the data asked for."""


@dataclass
class LabelledImages:
    """What a feature network trains and is tested on: ``(N, C, H, W)`` images in ``[0, 1]``
    with integer labels, and how (``binarize``: Bernoulli-sample every training batch, for models
    of binary data; ``describe``: provenance for the JSON)."""

    dataset: str
    size: int
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    num_classes: int
    binarize: bool
    describe: dict[str, Any]


class FeatureCNN(nn.Module):
    """Three 3×3 conv layers (32, 64, 64 channels; max-pooling after the first two, 4×4 average
    pooling after the third), a ``feature_size`` ReLU layer (the features) and a linear
    classifier. Any image side ≥ 4 works."""

    def __init__(self, num_classes: int, feature_size: int = 128, channels: int = 1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs >= 2 classes, found {num_classes}")
        self.num_classes, self.feature_size, self.channels = num_classes, feature_size, channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * 16, feature_size),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_size, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """``(N, feature_size)`` penultimate-layer features."""
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))


def _batched(net: FeatureCNN, images: Tensor, fn: str) -> Tensor:
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            return torch.cat([getattr(net, fn)(chunk) for chunk in images.split(_EVAL_BATCH)])
    finally:
        net.train(was)


def classifier_accuracy(net: FeatureCNN, images: Tensor, labels: Tensor) -> float:
    """The share of ``images`` whose arg-max class is their label."""
    logits = _batched(net, images, "forward")
    return float((logits.argmax(1) == labels).double().mean())


def train_feature_net(
    data: LabelledImages,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    feature_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FeatureCNN, dict[str, Any]]:
    """Train a :class:`FeatureCNN` on ``data`` for ``steps`` Adam steps (seeded; the global RNG
    is left untouched); returns the network (eval mode) and its record: settings, held-out
    ``test_accuracy``, ``train_seconds``."""
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"steps, batch_size and lr must be > 0, found {steps}, {batch_size}, {lr}")
    if len(data.train_images) == 0 or len(data.test_images) == 0:
        raise ValueError(f"{data.dataset}: no images to train or test a feature network on")
    started = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FeatureCNN(data.num_classes, feature_size, data.train_images.shape[1])
        optimiser = torch.optim.Adam(net.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        n = len(data.train_images)
        net.train()
        bar = tqdm(range(steps), desc="feature net", unit="step", disable=not progress)
        for _ in bar:
            rows = torch.randint(n, (min(batch_size, n),), generator=generator)
            images = data.train_images[rows]
            if data.binarize:
                images = binarize(images, generator)
            loss = F.cross_entropy(net(images), data.train_labels[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    record = {
        "dataset": data.dataset,
        "image_size": data.size,
        "num_classes": data.num_classes,
        "feature_size": feature_size,
        "channels": int(data.train_images.shape[1]),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "binarize": data.binarize,
        "num_train": len(data.train_images),
        "num_test": len(data.test_images),
        "test_accuracy": classifier_accuracy(net, data.test_images, data.test_labels),
        "train_seconds": time.perf_counter() - started,
        "data": data.describe,
    }
    return net, record


def save_feature_net(net: FeatureCNN, record: dict[str, Any], path: str | Path) -> Path:
    """Write the network's weights and ``record`` (accuracy, data, settings) atomically."""
    payload = {"format": FEATURE_NET_FORMAT, "version": _VERSION, "record": record}
    payload["state"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return write_atomic(Path(path), lambda fh: torch.save(payload, fh))


def load_feature_net(
    path: str | Path, *, dataset: str | None = None, size: int | None = None
) -> tuple[FeatureCNN, dict[str, Any]]:
    """A network written by :func:`save_feature_net` (``weights_only=True``) and its record;
    :class:`FeatureNetError` if the file is not one, or was trained on another ``dataset`` or
    image ``size`` than asked for."""
    path = Path(path)
    if not path.is_file():
        raise FeatureNetError(f"--feature-net: no file {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  unpickling errors come in many types
        raise FeatureNetError(f"--feature-net: cannot read {path} ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FEATURE_NET_FORMAT:
        raise FeatureNetError(
            f"--feature-net: {path} is not a feature network written by `pyro-draw fid` "
            "(for Inception-v3 weights use --features)"
        )
    record = payload["record"]
    for name, want in (("dataset", dataset), ("image_size", size)):
        if want is not None and record.get(name) != want:
            raise FeatureNetError(
                f"--feature-net: {path} was trained on {record.get('dataset')} at "
                f"{record.get('image_size')}x{record.get('image_size')}, but the checkpoint "
                f"needs {dataset} at {size}x{size}"
            )
    net = FeatureCNN(record["num_classes"], record["feature_size"], record["channels"])
    net.load_state_dict(payload["state"])
    return net.eval(), record


class ClassifierFeatures:
    """Penultimate-layer features of a trained :class:`FeatureCNN`, as ``(N, D)`` float64."""

    def __init__(self, net: FeatureCNN, record: dict[str, Any], path: Path | None = None):
        self.net, self.record, self.path = net, record, path
        self.name = f"feature-cnn ({record['dataset']}, {record['image_size']}px)"

    def __call__(self, images: Tensor) -> np.ndarray:
        return _batched(self.net, images.float(), "features").double().numpy()

    def describe(self) -> dict[str, Any]:
        """What the JSON says about the features (the network's record, without its data)."""
        shown = {k: v for k, v in self.record.items() if k != "data"}
        return {"network": "feature-cnn", "path": str(self.path), **shown}
