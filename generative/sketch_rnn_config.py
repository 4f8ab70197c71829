"""sketch-rnn's configuration (Ha & Eck 2017, appendix sec. 3): :class:`SketchRNNConfig` and the
named configurations (the paper's, the reference code's and small CPU networks, each also as the
decoder-only model of sec. 3.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from generative.config import ConfigDict, named_config

__all__ = ["CELLS", "SKETCH_RNN_CONFIGS", "SketchRNNConfig", "sketch_rnn_config"]

CELLS: tuple[str, ...] = ("lstm", "layer_norm", "hyper")  # decoder cells (generative.cells)


@dataclass(frozen=True)
class SketchRNNConfig(ConfigDict):
    """Hyper-parameters of a sketch-rnn network (appendix sec. 3).

    ``enc_hidden`` is the size of EACH direction of the bidirectional encoder, so ``h = [h→; h←]``
    (Eq. 1) has ``2 · enc_hidden`` units. ``recurrent_dropout`` is the drop probability (keep
    probability 0.9 ⇔ 0.1). ``max_length`` is ``N_max``; ``scale_factor`` the training set's
    offset standard deviation the data were divided by (appendix sec. 1), stored so that samples
    can be mapped back to pixels and other splits normalised alike (``None`` = not recorded).
    ``hyper_hidden`` / ``hyper_embedding`` size the HyperLSTM's small LSTM and its signals.
    """

    label = "sketch-rnn config"

    enc_hidden: int = 256
    dec_hidden: int = 512
    z_dim: int = 128  # N_z
    num_mixtures: int = 20  # M
    cell: str = "layer_norm"
    recurrent_dropout: float = 0.1
    conditional: bool = True
    max_length: int = 250  # N_max
    scale_factor: float | None = None
    hyper_hidden: int = 256
    hyper_embedding: int = 32

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"SketchRNNConfig.cell: expected one of {CELLS}, found {self.cell!r}")
        for name in ("enc_hidden", "dec_hidden", "z_dim", "num_mixtures", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SketchRNNConfig.{name}: expected an integer >= 1, found {value}")
        if self.cell == "hyper":
            for name in ("hyper_hidden", "hyper_embedding"):
                if getattr(self, name) < 1:
                    raise ValueError(
                        f"SketchRNNConfig.{name}: expected >= 1, found {getattr(self, name)}"
                    )
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError(
                "SketchRNNConfig.recurrent_dropout: expected a drop probability in [0, 1), "
                f"found {self.recurrent_dropout}"
            )
        if self.scale_factor is not None and not (
            math.isfinite(self.scale_factor) and self.scale_factor > 0
        ):
            raise ValueError(
                f"SketchRNNConfig.scale_factor: expected None or > 0, found {self.scale_factor}"
            )


_PAPER = SketchRNNConfig(
    enc_hidden=256,
    dec_hidden=2048,
    z_dim=128,
    num_mixtures=20,
    cell="hyper",
    recurrent_dropout=0.1,
    hyper_hidden=256,
    hyper_embedding=32,
)
_SMALL = SketchRNNConfig(
    enc_hidden=64, dec_hidden=128, z_dim=32, num_mixtures=10, cell="lstm", recurrent_dropout=0.0
)
_BASE_CONFIGS: dict[str, SketchRNNConfig] = {
    # Appendix sec. 3: encoder 512 nodes (= 256 per direction, as the reference code's
    # enc_rnn_size=256 whose bidirectional state is 2 × 256), decoder 2048-unit HyperLSTM
    # (sec. 4), M = 20, N_z = 128, layer norm, recurrent dropout keep 0.9. The paper gives no
    # HyperLSTM sizes; 256 hyper units / 32-dim signals are the reference code's defaults.
    "paper": _PAPER,
    # The same with the layer-normalised LSTM decoder (the appendix's "Layer Normalization").
    "paper_layer_norm": replace(_PAPER, cell="layer_norm"),
    # The reference code's default hparams: 256 × 2 encoder, 512 decoder (plain LSTM cell with
    # recurrent dropout), M = 20, N_z = 128.
    "reference": replace(_PAPER, dec_hidden=512, cell="lstm"),
    # Not from the paper: trains in minutes on a CPU. Plain LSTM without recurrent dropout, so
    # the decoder runs as one fused nn.LSTM call.
    "small": _SMALL,
    # Not from the paper: small with the layer-norm cell and recurrent dropout (per-step loop).
    "small_layer_norm": replace(_SMALL, cell="layer_norm", recurrent_dropout=0.1),
    # Not from the paper: a CPU network for long runs, with the paper's N_z = 128 and M = 20.
    # Eq. 10 divides the KL by N_z and Eq. 9 the reconstruction by N_max, so with small's
    # N_z = 32 the KL_min floor frees only 0.2 · 32 = 6.4 nats and each nat above it costs
    # N_max / N_z = 7.8 (× w_KL) nats of reconstruction instead of the paper's ≈ 2: small's
    # L_KL sits at the floor. Encoder 2 × 128, fused-LSTM decoder 256.
    "medium": replace(_SMALL, enc_hidden=128, dec_hidden=256, z_dim=128, num_mixtures=20),
}
#: Named configurations; ``<name>_decoder`` is the unconditional decoder-only model (sec. 3.3).
SKETCH_RNN_CONFIGS: dict[str, SketchRNNConfig] = {
    **_BASE_CONFIGS,
    **{f"{k}_decoder": replace(v, conditional=False) for k, v in _BASE_CONFIGS.items()},
}


def sketch_rnn_config(name: str, **overrides) -> SketchRNNConfig:
    """A named configuration with fields overridden (e.g. ``max_length``, ``scale_factor``)."""
    return named_config(SKETCH_RNN_CONFIGS, "sketch-rnn", name, overrides)
