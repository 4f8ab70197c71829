"""Sampling from and encoding with a trained sketch-rnn, shared by its creative tasks
(:mod:`tasks.sketch_rnn.latent`, :mod:`tasks.sketch_rnn.completion`; Ha & Eck 2017, sec. 3.2).

Units. Inputs are stroke-3 sketches in the *model's* units — offsets divided by the training
scale factor, as :class:`tasks.data.strokes.StrokeData` holds them (or padded stroke-5 batches of
them from :func:`tasks.data.stroke_formats.pad_batch`). Every output is a list of stroke-3
float32 arrays in *data* units: offsets multiplied back by ``model.config.scale_factor``
(appendix sec. 1; when the config recorded no factor, outputs stay in model units). Sampling runs
for at most ``N_max = config.max_length`` steps and stops at the first ``p_3 = 1`` (sec. 3.2); a
sample that ends at once is an empty ``(0, 3)`` array.

All functions put the modules in eval mode while they run (no recurrent dropout) and restore the
previous mode. Randomness comes only from the ``generator`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from tasks.data.stroke_formats import pad_batch, to_stroke3
from tasks.sketch_rnn.svg import check_stroke3

__all__ = [
    "COMPLETION_TEMPERATURE",
    "INTERPOLATION_TEMPERATURE",
    "RECONSTRUCTION_TEMPERATURES",
    "SAMPLE_TEMPERATURES",
    "Z_MODES",
    "check_sketches",
    "check_temperature",
    "decode",
    "encode",
    "eval_mode",
    "model_device",
    "output_scale",
    "require_conditional",
    "to_data_units",
]

INTERPOLATION_TEMPERATURE = 0.1  # appendix sec. 5
COMPLETION_TEMPERATURE = 0.8  # sec. 4.4
RECONSTRUCTION_TEMPERATURES = (0.01, 0.25, 0.5, 0.75, 1.0)  # sec. 4.1: 0.01 … 1.0, left to right
SAMPLE_TEMPERATURES = (0.2, 0.5, 0.9)  # sec. 3.3, Fig. 3: τ = 0.2 (top) … 0.9 (bottom)
Z_MODES: tuple[str, ...] = ("posterior", "encoder", "prior")


# ----------------------------------------------------------------------------- helpers


def model_device(model: nn.Module) -> torch.device:
    return model.start_token.device


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode (no recurrent dropout) and no gradients; restores the previous modes."""
    present = [m for m in modules if m is not None]
    modes = [m.training for m in present]
    try:
        for m in present:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)


def require_conditional(model: nn.Module, task: str) -> None:
    if not model.config.conditional:
        raise ValueError(
            f"{task} needs the conditional sketch-rnn (a latent z); this is the decoder-only "
            "model (sec. 3.3)"
        )


def output_scale(model: nn.Module) -> float:
    """The factor from model units back to data units: ``config.scale_factor`` (1 if unset)."""
    factor = model.config.scale_factor
    return 1.0 if factor is None else float(factor)


def to_data_units(seq3: np.ndarray, scale: float) -> np.ndarray:
    out = np.array(seq3, dtype=np.float32)
    out[:, :2] *= np.float32(scale)
    return out


def check_sketches(model: nn.Module, sketches: Sequence[np.ndarray], name: str) -> list:
    n_max = model.config.max_length
    out = []
    for i, s in enumerate(sketches):
        arr = check_stroke3(s, f"{name}[{i}]")
        if not 1 <= len(arr) <= n_max:
            raise ValueError(
                f"{name}[{i}]: expected 1 … N_max = {n_max} points (config.max_length), "
                f"found {len(arr)}"
            )
        out.append(arr.astype(np.float32))
    if not out:
        raise ValueError(f"{name}: expected at least one sketch, found none")
    return out


def check_temperature(tau: float, name: str = "temperature") -> float:
    tau = float(tau)
    if not (math.isfinite(tau) and tau >= 0):
        raise ValueError(f"{name}: expected a finite temperature >= 0, found {tau}")
    return tau


def decode(
    model: nn.Module,
    z: Tensor | None,
    temperature: float,
    *,
    batch_size: int | None = None,
    prefix: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """Sample sketches from the decoder (sec. 3.2, Eq. 8) and return them as stroke-3 in data
    units. ``z`` (B, N_z) or ``None`` (decoder-only model, or a prior draw by the model).
    ``prefix`` (B, P, 5) stroke-5 rows are teacher-forced first and included in the result; the
    model then samples ``N_max − P`` steps at most."""
    tau = check_temperature(temperature)
    num_prefix = 0 if prefix is None else prefix.shape[1]
    steps = model.config.max_length - num_prefix
    with eval_mode(model):
        rows = model.sample(
            z, steps, temperature=tau, prefix=prefix, batch_size=batch_size, generator=generator
        )
    if prefix is not None:
        rows = torch.cat([prefix.to(rows), rows], 1)
    scale = output_scale(model)
    return [to_data_units(to_stroke3(r, start_token=False), scale) for r in rows.cpu()]


def encode(
    model: nn.Module, guide: nn.Module, sketches: Sequence[np.ndarray]
) -> tuple[Tensor, Tensor]:
    """``(μ, σ)`` (B, N_z) of the encoder's ``q(z | S)`` (Eqs. 1–2) for stroke-3 sketches in
    model units (padded with :func:`tasks.data.stroke_formats.pad_batch`)."""
    require_conditional(model, "encode")
    checked = check_sketches(model, sketches, "sketches")
    x5, lengths = pad_batch(checked, model.config.max_length)
    device = model_device(model)
    with eval_mode(model, guide):
        return guide.encode(x5.to(device), lengths.to(device))
