"""Result files: one strict-JSON writer for every ``eval.json`` and table the tasks write."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
from torch import Tensor

from inference.checkpoint import write_atomic

__all__ = ["write_json"]


def _json_safe(value: Any) -> Any:
    """Recursively convert numpy/torch scalars to Python and non-finite floats to ``None``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray | Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``result`` to ``path`` as strict JSON, atomically (temp file + ``os.replace``).

    NaN/inf values (e.g. k̂ with too few samples, stderr of one example) are written as ``null``.
    """
    text = json.dumps(_json_safe(result), indent=2, allow_nan=False, ensure_ascii=False)
    write_atomic(path, lambda fh: fh.write((text + "\n").encode("utf-8")))
