"""Tiny model configurations shared by the tests (small enough to train on a CPU in seconds)."""

from __future__ import annotations

from typing import Any

from generative.sketch_rnn_config import SketchRNNConfig

#: A tiny AIR on 16×16 images (``AirConfig`` fields).
AIR_TINY: dict[str, Any] = dict(
    height=16,
    width=16,
    max_steps=3,
    z_what_size=4,
    glimpse_size=8,
    feature_size=16,
    hidden_size=16,
    mlp_hidden=16,
)


def tiny_dood(size: int, hidden: int, render_points: int) -> dict[str, Any]:
    """``DooDConfig`` fields of a 3-stroke DooD on ``size × size`` images: glimpses of half the
    image size, cubic strokes, ``hidden`` units in every network, two mixture components and
    ``render_points`` curve points."""
    return dict(
        height=size,
        width=size,
        max_strokes=3,
        control_points=4,
        glimpse_size=size // 2,
        hidden_size=hidden,
        feature_size=hidden,
        mlp_hidden=hidden,
        layout_components=2,
        stroke_components=2,
        render_points=render_points,
        eval_render_points=render_points,
    )


def tiny_sketch_rnn(**fields: Any) -> SketchRNNConfig:
    """A tiny sketch-rnn (LSTM cells, no recurrent dropout) with ``fields`` set too."""
    return SketchRNNConfig(
        enc_hidden=8,
        dec_hidden=16,
        z_dim=4,
        num_mixtures=3,
        cell="lstm",
        recurrent_dropout=0.0,
        **fields,
    )


def tiny_dood_pair(size: int = 16, seed: int = 0) -> tuple[Any, Any, dict[str, Any]]:
    """A seeded, randomly initialised tiny DooD (``tiny_dood(size, 16, 20)``) through the family
    builder, in eval mode: ``(model, guide, config dict)``."""
    import torch

    from generative.dood_config import DooDConfig
    from tasks.dood import FAMILY

    torch.manual_seed(seed)
    config = DooDConfig(**tiny_dood(size, hidden=16, render_points=20)).to_dict()
    model, guide = FAMILY.model("dood").build(config)
    return model.eval(), guide.eval(), config
