"""``pyro-draw fid CHECKPOINT…``: Fréchet distances of samples to held-out images (DooD Fig. 6).

For every checkpoint (DooD, AIR or DRAW) ``--num-samples`` unconditional samples (1500, the DooD
code's protocol; DooD at each ``--temperature``, appendix D.2.1's low-temperature sampling) are
compared with as many held-out test images of its training dataset at its image size; the
*floor* row compares those test images with a disjoint set of as many other test images (what
real data scores). Features come from the project's feature network, trained on the dataset's
training split (:mod:`tasks.quality.features`; its held-out accuracy is in the table) or, with
``--features PATH``, from Inception-v3 weights the user has (:mod:`tasks.quality.inception`).
Everything is checked (checkpoints, data, feature files) before any sample is drawn.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from inference.checkpoint import Checkpoint, read_checkpoint
from tasks.families import find_model
from tasks.options import DataOptions, option, positive
from tasks.quality.data import (
    ImageSource,
    image_source,
    labelled_images,
    load_real,
    model_samples,
)
from tasks.quality.features import (
    ClassifierFeatures,
    LabelledImages,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from tasks.quality.frechet import FeatureStatistics, feature_statistics, frechet_from_statistics
from tasks.quality.inception import InceptionFeatures
from tasks.results import write_json

__all__ = ["FID_DESCRIPTION", "FID_HELP", "FidOptions", "add_fid_arguments", "run_fid"]

FID_HELP = "Fréchet distances of samples to held-out images (DooD Fig. 6), with the real floor"
FID_DESCRIPTION = (
    "Fréchet distance (DooD Fig. 6) between --num-samples unconditional samples of each "
    "checkpoint (DooD, AIR, DRAW; DooD at each --temperature, appendix D.2.1) and as many "
    "held-out test images, plus the floor: two disjoint sets of test images. Features: the "
    "project's CNN classifier trained on the dataset's training split (written to, or read "
    "from, <out>/feature_net_<dataset>_<size>.pt, or --feature-net), or Inception-v3 weights "
    "you have (--features; needs torchvision). Writes a JSON table (--json)."
)
#: DooD Fig. 6: Inception FID, mean ± 1 sd over 5 runs (DooD samples unless said otherwise)
PAPER_FIG6 = {
    "note": (
        "the paper's Fig. 6 (Inception FID, mean and 1 sd over 5 runs, DooD at 500k steps); "
        "another feature network and scale: comparable only with rows computed with --features"
    ),
    "mnist": [0.134, 0.013],
    "emnist": [0.137, 0.006],
    "kmnist": [0.123, 0.020],
    "quickdraw": [0.084, 0.009],
    "omniglot": [0.051, 0.007],
    "omniglot (GNS)": [0.133, 0.007],
    "omniglot (true samples)": [0.025, 0.004],
}
_TEMPERATURE_MODELS = ("dood",)  # AIR (fixed prior) and DRAW have no sampling temperature


@dataclass
class FidOptions(DataOptions):
    """Options of ``pyro-draw fid``."""

    checkpoints: list[str] = option([], "checkpoints", cli=False)
    features: str | None = option(
        None,
        "Inception-v3 weights (a torchvision or pytorch-fid state dict) instead of the "
        "project's feature network; needs torchvision",
        metavar="PATH",
    )
    feature_net: str | None = option(
        None,
        "a feature network written by `pyro-draw fid` (it must match every checkpoint's "
        "dataset and image size)",
        metavar="PATH",
        default_text="<out>/feature_net_<dataset>_<size>.pt, trained there if missing",
    )
    feature_steps: int = option(2000, "training steps of a new feature network", check=positive)
    feature_train_examples: int = option(
        20000, "training images of a new feature network (a seeded subset)", check=positive
    )
    num_samples: int = option(1500, "samples and real images per set (DooD code)", check=positive)
    temperature: list[float] = option(
        [1.0], "DooD sampling temperature(s); AIR and DRAW sample at 1", check=positive
    )
    out: str = option("runs/fid", "output folder (feature networks, the JSON)")
    json: str | None = option(None, "write the table here", default_text="<out>/fid.json")

    def __post_init__(self) -> None:
        if isinstance(self.temperature, int | float):
            self.temperature = [float(self.temperature)]
        super().__post_init__()
        if not self.checkpoints:
            raise ValueError("fid: give at least one CHECKPOINT")
        if self.features and self.feature_net:
            raise ValueError("--features and --feature-net: give one feature network, not both")
        if self.num_samples < 2:
            raise ValueError(f"--num-samples: a covariance needs >= 2, found {self.num_samples}")


def add_fid_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional ``CHECKPOINT…`` of ``pyro-draw fid``."""
    parser.add_argument(
        "checkpoints", nargs="+", metavar="CHECKPOINT", help="DooD, AIR or DRAW checkpoint.pt"
    )


def _temperatures(checkpoint: Checkpoint, options: FidOptions) -> list[float]:
    if checkpoint.model in _TEMPERATURE_MODELS:
        return list(options.temperature)
    if 1.0 not in options.temperature:
        raise ValueError(
            f"--temperature {' '.join(map(str, options.temperature))}: {checkpoint.path} holds "
            f"a {checkpoint.model!r} model, which has no sampling temperature (it samples at "
            "1); include 1 in --temperature"
        )
    return [1.0]


def _feature_extractors(
    sources: dict[str, ImageSource], options: FidOptions
) -> dict[str, Any | None]:
    """The features of each source that can be had before any work: Inception, a given
    feature network, or a cached one in ``out``; ``None`` where one must be trained."""
    if options.features:
        inception = InceptionFeatures(options.features)
        return dict.fromkeys(sources, inception)
    found: dict[str, Any | None] = {}
    for key, source in sources.items():
        path = Path(options.feature_net) if options.feature_net else _default_net(options, key)
        if options.feature_net or path.is_file():
            net, record = load_feature_net(path, dataset=source.dataset, size=source.size)
            found[key] = ClassifierFeatures(net, record, path)
        else:
            found[key] = None
    return found


def _default_net(options: FidOptions, key: str) -> Path:
    return Path(options.out) / f"feature_net_{key}.pt"


def _labelled(source: ImageSource, options: FidOptions) -> LabelledImages:
    return labelled_images(
        source,
        num_train=options.feature_train_examples,
        seed=options.seed,
        data_dir=options.data_dir,
        download=options.download,
    )


def _train_net(
    source: ImageSource, data: LabelledImages, options: FidOptions
) -> ClassifierFeatures:
    print(
        f"training a feature network on {source.dataset} ({len(data.train_images)} images, "
        f"{data.num_classes} classes) for {options.feature_steps} steps",
        flush=True,
    )
    net, record = train_feature_net(
        data, steps=options.feature_steps, seed=options.seed, progress=options.progress
    )
    path = save_feature_net(net, record, _default_net(options, source.key))
    print(f"  held-out accuracy {record['test_accuracy']:.2%} ({record['data']['accuracy_split']})")
    return ClassifierFeatures(net, record, path)


def _sample_row(
    checkpoint: Checkpoint,
    model: nn.Module,
    source: ImageSource,
    tau: float,
    features: Any,
    real: FeatureStatistics,
    binary: bool,
    options: FidOptions,
) -> dict[str, Any]:
    started = time.perf_counter()
    images = model_samples(
        model, source, options.num_samples, temperature=tau, binary=binary, seed=options.seed
    )
    seconds = time.perf_counter() - started
    stats = feature_statistics(features(images))
    return {
        "kind": "samples",
        "checkpoint": str(checkpoint.path),
        "model": checkpoint.model,
        "config_name": checkpoint.record.config_name,
        "trained_on": source.dataset,
        "step": checkpoint.step,
        "image_size": source.size,
        "temperature": tau,
        "samples": "Bernoulli(sigma(c_T))" if binary else "final canvas (mean image)",
        "num_samples": options.num_samples,
        **frechet_from_statistics(stats, real),
        "sample_seconds": seconds,
        "mean_ink": float(images.mean()),
    }


def _floor_row(
    source: ImageSource, real: FeatureStatistics, other: FeatureStatistics
) -> dict[str, Any]:
    return {
        "kind": "floor",
        "model": "held-out data",
        "trained_on": source.dataset,
        "image_size": source.size,
        "reference": f"{other.count} other {source.dataset} test images (disjoint)",
        "num_samples": other.count,
        **frechet_from_statistics(other, real),
    }


def format_fid_table(rows: list[dict[str, Any]]) -> str:
    """The printed table: one line per row."""
    lines = [f"{'model':<16} {'data':<12} {'size':>4} {'τ':>5} {'FID':>10}  checkpoint"]
    for row in rows:
        tau = f"{row['temperature']:g}" if "temperature" in row else "-"
        lines.append(
            f"{row['model']:<16} {row['trained_on']:<12} {row['image_size']:>4} {tau:>5} "
            f"{row['frechet_distance']:>10.4f}  {row.get('checkpoint', row.get('reference'))}"
        )
    return "\n".join(lines)


def run_fid(options: FidOptions) -> dict[str, Any]:
    """``pyro-draw fid``: check every input, then per dataset the real sets, the feature
    network (trained if missing) and the floor, then per checkpoint and temperature the
    samples' distance; writes the JSON table and prints it."""
    started = time.perf_counter()
    checkpoints = [read_checkpoint(path, map_location="cpu") for path in options.checkpoints]
    sources = {str(c.path): image_source(c) for c in checkpoints}
    for checkpoint in checkpoints:
        find_model(checkpoint.model)
        _temperatures(checkpoint, options)
    unique = {s.key: s for s in sources.values()}
    extractors = _feature_extractors(unique, options)
    real: dict[str, tuple[Tensor, Tensor, str]] = {}
    for key, source in unique.items():  # every data file is read before any work
        first, second, data = load_real(
            source,
            options.num_samples,
            seed=options.seed,
            data_dir=options.data_dir,
            download=options.download,
        )
        real[key] = (first, second, data.binarization)
    labelled = {k: _labelled(unique[k], options) for k, found in extractors.items() if not found}
    rows, feature_info, real_stats = [], {}, {}
    for key, source in unique.items():
        features = extractors[key] or _train_net(source, labelled.pop(key), options)
        extractors[key] = features
        feature_info[key] = features.describe()
        first, second, _ = real[key]
        real_stats[key] = feature_statistics(features(first))
        rows.append(_floor_row(source, real_stats[key], feature_statistics(features(second))))
    for checkpoint in checkpoints:
        source = sources[str(checkpoint.path)]
        binary = source.kind == "images" and real[source.key][2] in ("fixed", "seeded")
        model, _ = find_model(checkpoint.model)[1].restore(checkpoint, options.device)
        for tau in _temperatures(checkpoint, options):
            row = _sample_row(
                checkpoint,
                model,
                source,
                tau,
                extractors[source.key],
                real_stats[source.key],
                binary,
                options,
            )
            rows.append(row)
            print(f"{row['model']} τ={tau:g}: FID {row['frechet_distance']:.4f}", flush=True)
    result = {
        "task": "Fréchet distance of samples to held-out images (DooD Fig. 6)",
        "protocol": (
            f"{options.num_samples} samples vs {options.num_samples} held-out test images at "
            "the model's size (the DooD code's 1500); floor: the same test images vs as many "
            "other test images"
        ),
        "features": feature_info,
        "rows": rows,
        "paper_fig6": PAPER_FIG6,
        "settings": {
            "num_samples": options.num_samples,
            "temperature": list(options.temperature),
            "seed": options.seed,
            "device": options.device,
        },
        "seconds": time.perf_counter() - started,
        "command": " ".join(["pyro-draw", *sys.argv[1:]]),
    }
    path = Path(options.json) if options.json else Path(options.out) / "fid.json"
    write_json(result, path)
    print(format_fid_table(rows))
    print(f"wrote {path}")
    return result
