"""Neural building blocks shared by DooD and the AIR baselines (Liang et al. 2022, appendix B.2).

* :class:`FeatureCNN` — image feature extractor: two 3×3, stride-1 convolutions going from
  ``in_channels`` (1) to 8 to 16 channels, **no pooling** (to keep the features position
  dependent), then a 1-layer MLP to 256 features.
* :class:`MLP` — every prior/posterior/renderer-parameter network: two 256-unit hidden layers with
  ``tanh``; :meth:`MLP.init_output` sets the last layer (appendix C: identity transforms for the
  layout networks, a high "continue" bias for the stop network); :func:`presence_mlp` is the
  stop network of the models and guides.
* :class:`RecurrentCore` — a ``GRUCell`` with 256-dim hidden state and a learned initial state
  (the layout and stroke RNNs ``h^l_t``, ``h^s_t``).

Choices the appendix leaves open (documented): convolutions use padding 1 (the feature map keeps
the input size); ReLU follows each convolution and the output linear layer of the CNN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["FEATURE_SIZE", "HIDDEN_SIZE", "MLP", "FeatureCNN", "RecurrentCore", "presence_mlp"]

FEATURE_SIZE = 256  # CNN output features (appendix B.2)
HIDDEN_SIZE = 256  # MLP hidden units and GRU hidden state (appendix B.2)


class FeatureCNN(nn.Module):
    """Appendix B.2 feature extractor: Conv3×3(C→8) → ReLU → Conv3×3(8→16) → ReLU → flatten →
    Linear(16·H·W → ``out_features``) → ReLU. No pooling. ``stride=2`` (not the paper's) shrinks
    the linear layer 16-fold (16·⌈H/4⌉·⌈W/4⌉ inputs). Input ``(B, C, H, W)``, output
    ``(B, out_features)``."""

    def __init__(
        self,
        height: int,
        width: int,
        in_channels: int = 1,
        out_features: int = FEATURE_SIZE,
        channels: Sequence[int] = (8, 16),
        stride: int = 1,
    ):
        super().__init__()
        if height < 1 or width < 1 or in_channels < 1:
            raise ValueError(
                f"FeatureCNN: height, width, in_channels must be >= 1, "
                f"found {(height, width, in_channels)}"
            )
        self.input_shape = (in_channels, height, width)
        self.out_features = out_features
        if stride < 1:
            raise ValueError(f"FeatureCNN: stride must be >= 1, found {stride}")
        layers: list[nn.Module] = []
        previous = in_channels
        for ch in channels:
            layers += [nn.Conv2d(previous, ch, kernel_size=3, stride=stride, padding=1), nn.ReLU()]
            previous = ch
            height, width = (height - 1) // stride + 1, (width - 1) // stride + 1
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(previous * height * width, out_features)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"FeatureCNN: expected images of shape (B, {', '.join(map(str, self.input_shape))})"
                f", found {tuple(images.shape)}"
            )
        features = self.convs(images).flatten(1)
        return torch.relu(self.linear(features))


class MLP(nn.Module):
    """``Linear → act → … → Linear`` with hidden sizes ``hidden`` (appendix B.2: (256, 256), tanh).

    Leading dimensions of the input are preserved: ``(..., in_features) → (..., out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (HIDDEN_SIZE, HIDDEN_SIZE),
        activation: Callable[[], nn.Module] = nn.Tanh,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"MLP: in_features and out_features must be >= 1, "
                f"found {(in_features, out_features)}"
            )
        self.in_features, self.out_features = in_features, out_features
        layers: list[nn.Module] = []
        previous = in_features
        for size in hidden:
            layers += [nn.Linear(previous, size), activation()]
            previous = size
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(previous, out_features)

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP: expected inputs of shape (..., {self.in_features}), "
                f"found {tuple(inputs.shape)}"
            )
        return self.output(self.hidden(inputs))

    @torch.no_grad()
    def init_output(
        self, bias: Tensor | Sequence[float] | float, weight_scale: float = 0.0
    ) -> None:
        """Set the last layer's bias to ``bias`` and scale its weights by ``weight_scale`` (0 =
        zero weights), so the initial output is (close to) ``bias`` for every input (appendix C:
        identity layout transforms, high initial "continue" probability)."""
        value = torch.as_tensor(bias, dtype=self.output.bias.dtype)
        self.output.bias.copy_(value.expand_as(self.output.bias))
        self.output.weight.mul_(weight_scale)


def presence_mlp(in_features: int, hidden: Sequence[int], stop_bias_init: float | None) -> MLP:
    """The stop network ``in_features → 1`` (one presence logit); with ``stop_bias_init`` its last
    layer starts at zero weights and that bias (appendix C, Omniglot)."""
    net = MLP(in_features, 1, hidden)
    if stop_bias_init is not None:
        net.init_output(stop_bias_init)
    return net


class RecurrentCore(nn.Module):
    """A ``GRUCell(input_size, hidden_size=256)`` with a learned initial state ``h_0``."""

    def __init__(self, input_size: int, hidden_size: int = HIDDEN_SIZE):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.cell = nn.GRUCell(input_size, hidden_size)
        self.h0 = nn.Parameter(torch.zeros(hidden_size))

    def initial(self, batch_size: int) -> Tensor:
        """The learned initial hidden state expanded to ``(batch_size, hidden_size)``."""
        return self.h0.expand(batch_size, self.hidden_size)

    def forward(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        if inputs.dim() != 2 or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"RecurrentCore: expected inputs of shape (B, {self.input_size}), "
                f"found {tuple(inputs.shape)}"
            )
        return self.cell(inputs, hidden)
