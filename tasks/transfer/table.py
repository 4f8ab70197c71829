"""The cross-dataset table of DooD Fig. 4: one cell per (source model, target dataset), the mean
and standard deviation of the IWAE log marginal likelihood over the checkpoints that share a
source (seeds), with the official DooD numbers beside the cells they exist for.

A *source* groups checkpoints by model, named configuration, training dataset and image size
(runs that differ only in their seed); its label reads ``"dood hours: mnist (50px)"``. The
standard deviation is the sample one (``ddof = 1``; the paper: "mean and standard deviation over
five runs"), ``None`` for a single checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OFFICIAL_DOOD_500K",
    "OFFICIAL_LABEL",
    "SourceKey",
    "official_reference",
    "source_key",
    "summarise_cells",
]

OFFICIAL_LABEL = (
    "REFERENCE, not ours: the official DooD repository's CSV, DooD at 500k training steps "
    "(nats, IWAE log p(x), K = 200, 50x50 grey images, mean and sd over runs)"
)
#: (source, target) -> (mean, sd) from the official repository's CSV (issue 15)
OFFICIAL_DOOD_500K: dict[tuple[str, str], tuple[float, float]] = {
    ("mnist", "mnist"): (7094.0, 65.0),
    ("mnist", "omniglot"): (4808.0, 222.0),
    ("omniglot", "omniglot"): (7386.0, 8.0),
    ("omniglot", "mnist"): (5309.0, 155.0),
    ("quickdraw", "quickdraw"): (4859.0, 101.0),
}


@dataclass(frozen=True, order=True)
class SourceKey:
    """What checkpoints of one source share: model, named config, training dataset, size."""

    model: str
    config_name: str
    dataset: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.model} {self.config_name}: {self.dataset} ({self.size}px)"


def source_key(cell: dict[str, Any]) -> SourceKey:
    """The :class:`SourceKey` of a per-checkpoint cell."""
    return SourceKey(
        cell["model"], str(cell.get("config_name")), cell["source"], int(cell["image_size"])
    )


def official_reference(model: str, source: str, target: str) -> dict[str, Any] | None:
    """The official DooD number of a cell, labelled, or ``None`` (none, or not a DooD row)."""
    found = OFFICIAL_DOOD_500K.get((source, target)) if model == "dood" else None
    if found is None:
        return None
    return {"mean": found[0], "sd": found[1], "label": OFFICIAL_LABEL}


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else None)


def summarise_cells(
    cells: Sequence[dict[str, Any]], targets: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per (source, target), sources in sorted order and targets in ``targets``
    order: ``source``, ``target``, ``mean``, ``sd``, ``num_checkpoints``, ``values``,
    ``checkpoints``, ``steps`` (each checkpoint's training steps: seeds trained for one
    wall-time budget end at different steps), ``examples_per_second`` (mean), ``official``
    (:func:`official_reference`)."""
    groups: dict[tuple[SourceKey, str], list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((source_key(cell), cell["target"]), []).append(cell)
    order = {name: i for i, name in enumerate(targets)}
    rows = []
    for (key, target), found in sorted(groups.items(), key=lambda g: (g[0][0], order[g[0][1]])):
        values = [c["log_likelihood"] for c in found]
        mean, sd = _mean_sd(values)
        rows.append(
            {
                "source": key.label,
                "model": key.model,
                "config_name": key.config_name,
                "trained_on": key.dataset,
                "image_size": key.size,
                "target": target,
                "mean": mean,
                "sd": sd,
                "num_checkpoints": len(found),
                "values": values,
                "checkpoints": [c["checkpoint"] for c in found],
                "steps": [c.get("step") for c in found],
                "num_examples": found[0]["num_examples"],
                "iwae_samples": found[0]["iwae_samples"],
                "examples_per_second": float(np.mean([c["examples_per_second"] for c in found])),
                "official": official_reference(key.model, key.dataset, target),
            }
        )
    return rows
