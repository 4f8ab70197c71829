"""``pyro-draw transfer CHECKPOINT… --targets …``: the cross-dataset study of DooD Fig. 4.

Every checkpoint (a DooD or AIR model trained on the source dataset its checkpoint records) is
evaluated on the test split of every target dataset, loaded at the checkpoint's image size as
the model was trained: the IWAE log marginal likelihood with K = ``--iwae-samples`` (200, as
Fig. 4) through :func:`tasks.dood.evaluate.evaluate_dood` (particles chunked to bound memory;
examples/s timed per cell). Checkpoints of one source (seeds) give the mean ± sd of a cell
(:mod:`tasks.transfer.table`), with the official DooD numbers beside them, labelled. Writes
``transfer.json``, ``transfer_heatmap.png`` and ``transfer_reconstructions.png`` under
``--out``. Checkpoints, targets and every data file are checked before any evaluation.

``--reuse transfer.json`` takes the cells of an earlier table that were made by the same
protocol (K, number of examples, seed) from the same checkpoint file at the same step, so adding
a seed or a source evaluates only the new cells (each reused cell records where it came from).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from inference.checkpoint import Checkpoint, read_checkpoint
from tasks.data.core import DataError, ImageData
from tasks.data.images50 import UNAVAILABLE
from tasks.dood.data import DATASETS, canonical_dataset, load_dood_images
from tasks.dood.evaluate import evaluate_with_options
from tasks.dood.models import MODEL_NAMES, PAPER_IWAE_SAMPLES
from tasks.dood.pictures import reconstruction_steps
from tasks.evaluate import say
from tasks.families import find_model
from tasks.options import DataOptions, option, positive
from tasks.results import write_json
from tasks.transfer.pictures import save_transfer_heatmap, save_transfer_reconstructions
from tasks.transfer.table import (
    OFFICIAL_DOOD_500K,
    OFFICIAL_LABEL,
    source_key,
    summarise_cells,
)

__all__ = [
    "TRANSFER_DESCRIPTION",
    "TRANSFER_HELP",
    "TransferOptions",
    "add_transfer_arguments",
    "check_transfer_checkpoint",
    "run_transfer",
]

TRANSFER_HELP = "cross-dataset IWAE log-likelihoods of DooD/AIR checkpoints (DooD Fig. 4)"
TRANSFER_DESCRIPTION = (
    "Zero-shot transfer (DooD Fig. 4): the IWAE log marginal likelihood (K = --iwae-samples) "
    "of the test split of every --targets dataset, loaded at each checkpoint's image size, under "
    "every DooD/AIR checkpoint; checkpoints sharing model, config, source dataset and size "
    "(seeds) give mean ± sd. Writes <out>/transfer.json (with the official DooD numbers, "
    "labelled as such), transfer_heatmap.png and transfer_reconstructions.png."
)
SPLIT = "test"


@dataclass
class TransferOptions(DataOptions):
    """Options of ``pyro-draw transfer``."""

    checkpoints: list[str] = option([], "checkpoints", cli=False)
    targets: list[str] = option(
        ["mnist", "omniglot", "quickdraw"],
        f"target datasets, their test splits ({', '.join(DATASETS)})",
        choices=DATASETS,
        metavar="DATASET",
    )
    iwae_samples: int = option(PAPER_IWAE_SAMPLES, "importance samples K", check=positive)
    num_examples: int | None = option(
        None,
        "evaluate a seeded random subset of this many test images per target",
        check=positive,
        default_text="the whole test split",
    )
    batch_size: int = option(50, "examples per IWAE batch", check=positive)
    chunk_size: int | None = option(
        None, "particles per chunk", check=positive, default_text="sized by memory"
    )
    num_pictures: int = option(4, "target images per target in the picture", check=positive)
    out: str = option("runs/transfer", "output folder")
    reuse: str | None = option(
        None,
        "an earlier transfer.json whose cells of the same checkpoint, step, target, K, "
        "number of examples and seed are taken instead of evaluated again",
        metavar="JSON",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.checkpoints:
            raise ValueError("transfer: give at least one CHECKPOINT")
        if not self.targets:
            raise ValueError("--targets: give at least one target dataset")
        for target in self.targets:
            name = f"{canonical_dataset(target)}50"
            if name in UNAVAILABLE:
                raise DataError(f"--targets {target}: {UNAVAILABLE[name][0]} is not available")
        self.targets = list(dict.fromkeys(canonical_dataset(t) for t in self.targets))


def add_transfer_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional ``CHECKPOINT…`` of ``pyro-draw transfer``."""
    parser.add_argument(
        "checkpoints", nargs="+", metavar="CHECKPOINT", help="DooD or AIR checkpoint.pt files"
    )


def check_transfer_checkpoint(checkpoint: Checkpoint) -> str:
    """The canonical source dataset of a DooD/AIR checkpoint; ``ValueError`` for other models
    (transfer is the stroke models' study) or a checkpoint without one training dataset."""
    if checkpoint.model not in MODEL_NAMES:
        raise ValueError(
            f"transfer: {checkpoint.path} holds a {checkpoint.model!r} model; the cross-dataset "
            f"study takes the stroke models' checkpoints ({', '.join(MODEL_NAMES)})"
        )
    dataset = checkpoint.record.dataset
    if not isinstance(dataset, str):
        raise ValueError(f"transfer: {checkpoint.path} does not record its training dataset")
    return canonical_dataset(dataset)


REUSE_PROTOCOL = ("iwae_samples", "num_examples", "seed")


def read_reusable_cells(path: str | Path, options: TransferOptions) -> list[dict[str, Any]]:
    """The cells of an earlier ``transfer.json`` made with this run's protocol
    (:data:`REUSE_PROTOCOL`); ``ValueError`` naming the file and field for anything else."""
    path = Path(path)
    try:
        earlier = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--reuse {path}: not a readable transfer.json ({error})") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("cells"), list):
        raise ValueError(f"--reuse {path}: expected a transfer.json with a 'cells' list")
    found = {
        "iwae_samples": earlier.get("iwae_samples"),
        "num_examples": earlier.get("num_examples"),
        "seed": (earlier.get("settings") or {}).get("seed"),
    }
    for name in REUSE_PROTOCOL:
        if found[name] != getattr(options, name):
            raise ValueError(
                f"--reuse {path}: field {name!r} is {found[name]!r} there and "
                f"{getattr(options, name)!r} here; only cells of the same protocol are reused"
            )
    return earlier["cells"]


CellKey = tuple[str, Any, Any]


def _cell_key(checkpoint: str | Path, step: Any, target: Any) -> CellKey:
    """What identifies a cell across runs: the checkpoint file (resolved path), step, target."""
    return str(Path(checkpoint).resolve()), step, target


def _index_cells(cells: list[dict[str, Any]]) -> dict[CellKey, dict[str, Any]]:
    """Earlier cells by :func:`_cell_key` (built once; each path is resolved once)."""
    return {_cell_key(c.get("checkpoint", ""), c.get("step"), c.get("target")): c for c in cells}


def _load_targets(
    checkpoints: list[Checkpoint], options: TransferOptions
) -> dict[tuple[str, int], ImageData]:
    """Every target's test images at every checkpoint's size (same seeded subset at each)."""
    sizes = sorted({int(c.model_config["height"]) for c in checkpoints})
    return {
        (target, size): load_dood_images(
            target,
            SPLIT,
            size=size,
            num_examples=options.num_examples,
            seed=options.seed,
            data_dir=options.data_dir,
            download=options.download,
        )
        for target in options.targets
        for size in sizes
    }


def _cell(
    checkpoint: Checkpoint,
    source: str,
    model: nn.Module,
    guide: nn.Module,
    data: ImageData,
    target: str,
    options: TransferOptions,
) -> dict[str, Any]:
    started = time.perf_counter()
    result = evaluate_with_options(model, guide, data, options)
    seconds = time.perf_counter() - started
    return {
        "checkpoint": str(checkpoint.path),
        "model": checkpoint.model,
        "config_name": checkpoint.record.config_name,
        "source": source,
        "target": target,
        "image_size": int(checkpoint.model_config["height"]),
        "step": checkpoint.step,
        "log_likelihood": result["log_likelihood"],
        "log_likelihood_stderr": result["log_likelihood_stderr"],
        "elbo": result["elbo"],
        "num_examples": result["num_examples"],
        "iwae_samples": result["iwae_samples"],
        "pareto_k_max": result["pareto_k"]["max"],
        "mean_strokes": result["stroke_counts"]["mean"],
        "seconds": seconds,
        "examples_per_second": result["num_examples"] / seconds,
    }


def _reconstruct(guide: nn.Module, images: Tensor, seed: int, device: str) -> Tensor:
    """The final canvases of one guide sample per image (the last step of Fig. 3's rows)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return reconstruction_steps(guide, images.to(device))["canvases"][:, -1].cpu()


def run_transfer(options: TransferOptions) -> dict[str, Any]:
    """``pyro-draw transfer``: read and check every checkpoint and every target's data, then
    evaluate each checkpoint on each target; write the JSON table and the two pictures."""
    started = time.perf_counter()
    checkpoints = [read_checkpoint(path, map_location="cpu") for path in options.checkpoints]
    sources = [check_transfer_checkpoint(c) for c in checkpoints]
    earlier = _index_cells(read_reusable_cells(options.reuse, options) if options.reuse else [])
    data = _load_targets(checkpoints, options)
    cells: list[dict[str, Any]] = []
    recon_rows: dict[Any, tuple[str, dict[str, Tensor]]] = {}
    for checkpoint, source in zip(checkpoints, sources, strict=True):
        _, spec = find_model(checkpoint.model)
        model, guide = spec.restore(checkpoint, options.device)
        size = int(checkpoint.model_config["height"])
        for target in options.targets:
            cell = earlier.get(_cell_key(checkpoint.path, checkpoint.step, target))
            if cell is not None:
                say(f"transfer: {checkpoint.path} -> {target}: reused from {options.reuse}")
                cell = {**cell, "reused_from": str(options.reuse)}
            else:
                say(f"transfer: {checkpoint.model} ({source}) {checkpoint.path} -> {target}")
                cell = _cell(checkpoint, source, model, guide, data[target, size], target, options)
            cells.append(cell)
            key = source_key(cell)
            if key not in recon_rows or recon_rows[key][1].get(target) is None:
                images = data[target, size].images[: options.num_pictures]
                recs = recon_rows.setdefault(key, (key.label, {}))[1]
                recs[target] = _reconstruct(guide, images, options.seed, options.device)
    table = summarise_cells(cells, options.targets)
    out = Path(options.out)
    largest = max(size for _, size in data)
    originals = {t: data[t, largest].images[: options.num_pictures] for t in options.targets}
    pictures = {
        "heatmap": str(save_transfer_heatmap(table, options.targets, out / "transfer_heatmap")),
        "reconstructions": str(
            save_transfer_reconstructions(
                originals,
                [recon_rows[k] for k in sorted(recon_rows)],
                out / "transfer_reconstructions",
            )
        ),
    }
    result = {
        "task": "cross-dataset transfer (DooD Fig. 4): IWAE log p(x) of target test images",
        "targets": options.targets,
        "split": SPLIT,
        "iwae_samples": options.iwae_samples,
        "num_examples": options.num_examples,
        "table": table,
        "cells": cells,
        "reference_official_dood_500k": {
            "label": OFFICIAL_LABEL,
            "values": [
                {"source": s, "target": t, "mean": m, "sd": sd}
                for (s, t), (m, sd) in OFFICIAL_DOOD_500K.items()
            ],
        },
        "pictures": pictures,
        "settings": {
            "seed": options.seed,
            "device": options.device,
            "batch_size": options.batch_size,
            "threads": torch.get_num_threads(),
        },
        "seconds": time.perf_counter() - started,
        "command": " ".join(["pyro-draw", *sys.argv[1:]]),
    }
    path = out / "transfer.json"
    write_json(result, path)
    print(format_transfer_table(table))
    print(f"wrote {path}, {pictures['heatmap']}, {pictures['reconstructions']}")
    return result


def format_transfer_table(table: list[dict[str, Any]]) -> str:
    """One printed line per (source, target) cell."""
    lines = []
    for row in table:
        sd = "" if row["sd"] is None else f" ± {row['sd']:.1f}"
        official = row["official"]
        ref = (
            f"   [official DooD 500k: {official['mean']:.0f} ± {official['sd']:.0f}]"
            if official
            else ""
        )
        lines.append(
            f"{row['source']} -> {row['target']}: {row['mean']:.1f}{sd} nats "
            f"(n = {row['num_checkpoints']}, {row['num_examples']} images, "
            f"{row['examples_per_second']:.2f} ex/s){ref}"
        )
    return "\n".join(lines)
