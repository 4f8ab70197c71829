"""Result files: one strict-JSON writer for every ``eval.json`` and table the tasks write."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
from torch import Tensor

from inference.checkpoint import write_atomic
from inference.distributed import world

__all__ = ["write_json"]


def _json_safe(value: Any) -> Any:
    """Recursively convert numpy/torch scalars to Python, NaN to ``None`` and ±inf to the
    strings ``"inf"``/``"-inf"`` (which ``float()`` reads back)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray | Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``result`` to ``path`` as strict JSON, atomically (temp file + ``os.replace``).

    NaN (not available: k̂ with too few samples, stderr of one example) is written as ``null``,
    an infinite value (a k̂ whose Pareto fit failed) as ``"inf"`` or ``"-inf"``. Under
    ``torchrun`` only rank 0 writes.
    """
    if not world().is_main:  # under torchrun rank 0 writes the results
        return
    text = json.dumps(_json_safe(result), indent=2, allow_nan=False, ensure_ascii=False)
    write_atomic(path, lambda fh: fh.write((text + "\n").encode("utf-8")))
