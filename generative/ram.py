"""Recurrent Attention Model (Mnih et al. 2014) and Differentiable RAM (Gregor et al. 2015, 4.1).

RAM as a Pyro model (sec. 3). For an image batch ``x`` of ``B`` images and ``T`` glimpses::

    h_0 = 0
    for t = 0 … T−1:
        l_t ~ p(l_0)                      (t = 0: the first glimpse is random, sec. 4.1)
        l_t ~ N(f_l(h_t), σ²)             (t ≥ 1: location network, sec. 3.1 "Actions")
        g_{t+1} = f_g(x, clip(l_t))       (glimpse network, sec. 3.1 "Sensor", Fig. 1B)
        h_{t+1} = f_h(h_t, g_{t+1})       (core network, sec. 3.1 "Internal state")
    y ~ Categorical(softmax(f_a(h_T)))    (action network, sec. 4.1, observed label)

Every location is a sample site ``"l_t"`` (``t = 0 … T−1``) inside ``pyro.plate("data", B)``
and ``pyro.markov``; the label is the site ``"y"``. Locations are non-reparameterised
(:class:`generative.distributions.ScoreNormal`: sampled values are detached, so no pathwise
gradient flows through them), as the retina is not differentiable in ``l`` and the paper trains
the location network with REINFORCE (sec. 3.2). Each location site carries its learned value
baseline ``b_t`` as ``infer={"baseline": {"baseline_value": b_t}}`` (the ``TraceGraph_ELBO``
convention), with ``b_t = Linear(h_t)`` of the *detached* core state: it depends on the history
but not on the action, and its squared-error loss trains only the baseline (sec. 3.2, Eq. 2).

Choices the paper leaves open (documented, configurable):

* **First location** ``l_0``: "the first glimpse is always random" (sec. 4.1, and Table 1a's
  "1 Random Glimpse" row), so ``first_location="uniform"`` draws ``l_0 ~ Uniform([−1, 1]²)``, a
  parameter-free policy (its REINFORCE term has zero gradient). ``"centre"`` puts it at ``(0,0)``
  (a ``Delta`` site, so site names stay the same).
* **Location mean** ``f_l``: ``tanh(Linear(h))`` by default (see :class:`LocationNetwork`;
  ``location_squash=False`` gives the paper's plain ``Linear(h)``); the sampled location is
  clipped to ``[−1, 1]²`` before sensing, its log-probability is that of the unclipped sample.
* **State fed to the location network**: detached (``detach_location_input=True``), as in the
  common reproductions, so the REINFORCE term trains only ``f_l`` and the cross-entropy alone
  trains the core and glimpse networks — the paper's hybrid loss (sec. 3.2: "we optimize the cross
  entropy loss to train the action network f_a and backpropagate the gradients through the core
  and glimpse networks. The location network f_l is always trained with REINFORCE").
* **σ** (location std) was chosen by random search and not reported; default 0.11.
* ``deterministic=True`` replaces every location by its policy mean (``l_0``: the centre, the
  mean of the uniform) through ``Delta`` sites — for evaluation and figures.

DRAM (DRAW sec. 4.1): an LSTM (256) that at each of ``T`` steps reads one ``12 × 12`` glimpse
with DRAW's selective read (:mod:`generative.attention`, Eqs. 19–27, image only — there is no
error image in classification), then classifies with a softmax layer. Attention is
differentiable, so the Pyro model has only the label site ``"y"``; training minimises
``−log p(y | x)`` (the ELBO of a model without latents, with an empty guide).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from generative.attention import AttentionParams, AttentiveRead, filterbanks, read_patch
from generative.checks import check_classification_batch
from generative.config import ImageConfig
from generative.distributions import ScoreNormal, ScoreUniform
from generative.glimpse import (
    DEFAULT_LOCATION_STD,
    GlimpseNetwork,
    LocationNetwork,
    clip_locations,
)

__all__ = [
    "CORES",
    "DRAM",
    "DRAMConfig",
    "DRAMOutput",
    "DRAM_CONFIGS",
    "FIRST_LOCATIONS",
    "RAM",
    "RAMConfig",
    "RAMOutput",
    "RAM_CONFIGS",
    "dram_config",
    "ram_config",
]

CORES = ("rnn", "lstm")
FIRST_LOCATIONS = ("uniform", "centre")


# ============================================================================ RAM
@dataclass(frozen=True)
class RAMConfig(ImageConfig):
    """Sizes of RAM (sec. 4); defaults are the paper's 28×28 MNIST model (Table 1a, 6 glimpses)."""

    channels: int = 1
    height: int = 28
    width: int = 28
    glimpse_size: int = 8  # g_w: side of the first (finest) retina patch
    scales: int = 1  # k: number of patches, each twice as wide as the previous
    num_glimpses: int = 6  # T
    glimpse_hidden: int = 128  # h_g
    location_hidden: int = 128  # h_l
    glimpse_output: int = 256  # g
    hidden_size: int = 256  # h (sec. 4.1: "The RNN state vector h had dimensionality 256")
    core: str = "rnn"  # "rnn": Rect(Linear(h) + Linear(g)) (classification); "lstm" (Catch)
    location_std: float = DEFAULT_LOCATION_STD
    location_squash: bool = True  # tanh on the policy mean (see generative.glimpse)
    first_location: str = "uniform"  # "uniform" (paper: random) or "centre"
    detach_location_input: bool = True
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name in (
            "channels",
            "height",
            "width",
            "glimpse_size",
            "scales",
            "num_glimpses",
            "glimpse_hidden",
            "location_hidden",
            "glimpse_output",
            "hidden_size",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RAMConfig.{name}: expected >= 1, found {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"RAMConfig.num_classes: expected >= 2, found {self.num_classes}")
        if self.core not in CORES:
            raise ValueError(f"RAMConfig.core: expected one of {CORES}, found {self.core!r}")
        if self.first_location not in FIRST_LOCATIONS:
            raise ValueError(
                f"RAMConfig.first_location: expected one of {FIRST_LOCATIONS}, "
                f"found {self.first_location!r}"
            )
        if not self.location_std > 0:
            raise ValueError(f"RAMConfig.location_std: expected > 0, found {self.location_std}")


RAM_CONFIGS: dict[str, RAMConfig] = {
    # Table 1a: 28×28 MNIST, 6 glimpses of one 8×8 scale (best row, 1.29% error)
    "mnist_28": RAMConfig(height=28, width=28, glimpse_size=8, scales=1, num_glimpses=6),
    # Table 1b: 60×60 translated MNIST, 8 glimpses of 12×12 at 3 scales (1.84%)
    "translated_60": RAMConfig(height=60, width=60, glimpse_size=12, scales=3, num_glimpses=8),
    # Table 2a: 60×60 cluttered translated MNIST, 8 glimpses, 12×12, 3 scales (5.23%)
    "cluttered_60": RAMConfig(height=60, width=60, glimpse_size=12, scales=3, num_glimpses=8),
    # Table 2b: 100×100 cluttered translated MNIST, 8 glimpses, 12×12, 4 scales (10.83%)
    "cluttered_100": RAMConfig(height=100, width=100, glimpse_size=12, scales=4, num_glimpses=8),
    # for tests and quick runs: 28×28, 4 glimpses of 8×8, narrow layers
    "small": RAMConfig(
        height=28,
        width=28,
        glimpse_size=8,
        scales=1,
        num_glimpses=4,
        glimpse_hidden=64,
        location_hidden=32,
        glimpse_output=128,
        hidden_size=128,
    ),
}


def ram_config(name: str, **overrides: Any) -> RAMConfig:
    """The named configuration (``RAM_CONFIGS``) with optional field overrides."""
    if name not in RAM_CONFIGS:
        raise ValueError(f"unknown RAM config {name!r}; expected one of {sorted(RAM_CONFIGS)}")
    return replace(RAM_CONFIGS[name], **overrides)


class RAMOutput(NamedTuple):
    """One run of RAM over a batch."""

    logits: Tensor  # (B, num_classes): f_a(h_T) before the softmax
    locations: Tensor  # (B, T, 2): the locations l_0 … l_{T−1} as sampled (before clipping)
    glimpses: Tensor | None  # (B, T, scales, C, size, size) retina outputs, when recorded


class RAM(nn.Module):
    """The Recurrent Attention Model for classification (sec. 3–4) as a Pyro model.

    ``model(images, labels=None, *, deterministic=False, record=False) -> RAMOutput``.
    """

    def __init__(self, config: RAMConfig):
        super().__init__()
        self.config = c = config
        self.glimpse_net = GlimpseNetwork(
            c.channels,
            c.glimpse_size,
            c.scales,
            glimpse_hidden=c.glimpse_hidden,
            location_hidden=c.location_hidden,
            output_size=c.glimpse_output,
        )
        if c.core == "rnn":  # sec. 4: h_t = Rect(Linear(h_{t−1}) + Linear(g_t))
            self.core_h = nn.Linear(c.hidden_size, c.hidden_size)
            self.core_g = nn.Linear(c.glimpse_output, c.hidden_size)
        else:
            self.core_lstm = nn.LSTMCell(c.glimpse_output, c.hidden_size)
        self.location_net = LocationNetwork(
            c.hidden_size, std=c.location_std, squash=c.location_squash
        )
        self.action_net = nn.Linear(c.hidden_size, c.num_classes)  # sec. 4.1: linear softmax
        self.baseline_net = nn.Linear(c.hidden_size, 1)  # b_t (sec. 3.2, Eq. 2)
        # σ as a tensor once (a float would be converted at every site); not a learned parameter
        self.register_buffer("location_std", torch.tensor(float(c.location_std)), persistent=False)

    # -- the networks -------------------------------------------------------------------------
    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        h = like.new_zeros(batch, self.config.hidden_size)
        return h, (h if self.config.core == "lstm" else None)

    def core(self, state: tuple[Tensor, Tensor | None], g: Tensor) -> tuple[Tensor, Tensor | None]:
        """Sec. 3.1 "Internal state": ``h_t = f_h(h_{t−1}, g_t)`` (sec. 4 for the RNN core)."""
        h, cell = state
        if self.config.core == "rnn":
            return torch.relu(self.core_h(h) + self.core_g(g)), None
        return self.core_lstm(g, (h, cell))

    def location_mean(self, h: Tensor) -> Tensor:
        """Sec. 4 "Location network": the policy mean ``f_l(h_t)`` ``(B, 2)``."""
        return self.location_net(h.detach() if self.config.detach_location_input else h)

    def baseline(self, h: Tensor) -> Tensor:
        """Sec. 3.2: the value baseline ``b_t = Linear(h_t)`` of a detached state, ``(B,)``."""
        return self.baseline_net(h.detach()).squeeze(-1)

    def first_location_distribution(self, like: Tensor, deterministic: bool) -> Any:
        """``p(l_0)``: ``Uniform([−1, 1]²)`` ("the first glimpse is always random") or centre."""
        zeros = like.new_zeros(like.shape[0], 2)
        if deterministic or self.config.first_location == "centre":
            return dist.Delta(zeros).to_event(1)
        return ScoreUniform(zeros - 1.0, zeros + 1.0).to_event(1)

    def location_distribution(self, h: Tensor, deterministic: bool) -> Any:
        """``π(l_t | h_t) = N(f_l(h_t), σ²)`` (non-reparameterised), or a Delta at its mean."""
        mean = self.location_mean(h)
        if deterministic:
            return dist.Delta(mean.detach()).to_event(1)
        return ScoreNormal(mean, self.location_std.to(mean.dtype)).to_event(1)

    # -- the Pyro program ---------------------------------------------------------------------
    def _run(
        self,
        images: Tensor,
        labels: Tensor | None,
        *,
        deterministic: bool,
        record: bool,
        classify: bool,
    ) -> RAMOutput | None:
        c = self.config
        check_classification_batch(images, labels, c.image_shape, c.num_classes)
        batch = images.shape[0]
        state = self.initial_state(batch, images)
        locations, glimpses = [], []
        with pyro.plate("data", batch, device=images.device):  # (no device probe per call)
            for t in pyro.markov(range(c.num_glimpses)):
                if t == 0:
                    fn = self.first_location_distribution(images, deterministic)
                else:
                    fn = self.location_distribution(state[0], deterministic)
                infer = {"baseline": {"baseline_value": self.baseline(state[0])}}
                loc = pyro.sample(f"l_{t}", fn, infer=infer)
                locations.append(loc)
                if not classify and t == c.num_glimpses - 1:
                    break  # the guide needs no glimpse after the last location
                sensed = clip_locations(loc)
                if record:
                    glimpses.append(self.glimpse_net.retina(images, sensed))
                state = self.core(state, self.glimpse_net(images, sensed))
            if not classify:
                return None
            logits = self.action_net(state[0])
            pyro.sample("y", dist.Categorical(logits=logits), obs=labels)
        return RAMOutput(
            logits,
            torch.stack(locations, 1),
            torch.stack(glimpses, 1) if record else None,
        )

    def model(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        deterministic: bool = False,
        record: bool = False,
    ) -> RAMOutput:
        """``p(l_{0:T−1}, y | x)``: sample ``T`` locations, observe (or sample) the label ``y``.

        ``images`` ``(B, C, H, W)``; ``labels`` int64 ``(B,)`` or ``None`` (then ``y`` is
        sampled). ``record=True`` keeps the retina outputs for figures.
        """
        pyro.module("ram", self)  # (its 18 param messages are ~0.02 of the Pyro/plain ratio)
        return self._run(images, labels, deterministic=deterministic, record=record, classify=True)

    def policy(self, images: Tensor, labels: Tensor | None = None) -> None:
        """The location policy alone: the sites ``l_0 … l_{T−1}`` of :meth:`model`, no label."""
        pyro.module("ram", self)
        self._run(images, None, deterministic=False, record=False, classify=False)

    def logits(self, images: Tensor, *, deterministic: bool = False) -> Tensor:
        """``(B, num_classes)`` class logits after ``T`` glimpses (one location sample)."""
        return self._run(images, None, deterministic=deterministic, record=False, classify=True)[0]


# ============================================================================ DRAM
@dataclass(frozen=True)
class DRAMConfig(ImageConfig):
    """Differentiable RAM (DRAW sec. 4.1): LSTM(256), ``read_size²`` selective-read glimpses."""

    channels: int = 1
    height: int = 100
    width: int = 100
    read_size: int = 12  # N: the glimpse is N × N
    num_glimpses: int = 8
    hidden_size: int = 256
    num_classes: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            if int(getattr(self, f.name)) < 1:
                raise ValueError(
                    f"DRAMConfig.{f.name}: expected >= 1, found {getattr(self, f.name)}"
                )
        if self.num_classes < 2:
            raise ValueError(f"DRAMConfig.num_classes: expected >= 2, found {self.num_classes}")


DRAM_CONFIGS: dict[str, DRAMConfig] = {
    # DRAW Table 1: 100×100 cluttered translated MNIST, 12×12 glimpses (4 or 8: 4.18% / 3.36%)
    "cluttered_100": DRAMConfig(height=100, width=100, read_size=12, num_glimpses=8),
    "cluttered_100_4": DRAMConfig(height=100, width=100, read_size=12, num_glimpses=4),
    "cluttered_60": DRAMConfig(height=60, width=60, read_size=12, num_glimpses=8),
    "small": DRAMConfig(height=28, width=28, read_size=8, num_glimpses=4, hidden_size=64),
}


def dram_config(name: str, **overrides: Any) -> DRAMConfig:
    """The named configuration (``DRAM_CONFIGS``) with optional field overrides."""
    if name not in DRAM_CONFIGS:
        raise ValueError(f"unknown DRAM config {name!r}; expected one of {sorted(DRAM_CONFIGS)}")
    return replace(DRAM_CONFIGS[name], **overrides)


class DRAMOutput(NamedTuple):
    logits: Tensor  # (B, num_classes)
    windows: list[AttentionParams] | None  # per step, when recorded
    glimpses: Tensor | None  # (B, T, C, N, N), when recorded


class DRAM(nn.Module):
    """Differentiable RAM (DRAW sec. 4.1) as a Pyro model with the single observed site ``"y"``.

    Step ``t``: the window ``(g_X, g_Y, σ², δ, γ) = W(h_{t−1})`` (Eqs. 21–24), the glimpse
    ``γ F_Y x F_Xᵀ`` (Eqs. 19–27, image only), ``h_t = LSTM(h_{t−1}, glimpse)``; after ``T`` steps
    ``y ~ Categorical(softmax(Linear(h_T)))``.
    """

    def __init__(self, config: DRAMConfig):
        super().__init__()
        self.config = c = config
        # Reuse DRAW's attentive read for its window network W(h) (Eq. 21).
        self.read = AttentiveRead(c.hidden_size, c.channels, c.height, c.width, c.read_size)
        self.lstm = nn.LSTMCell(c.channels * c.read_size**2, c.hidden_size)
        self.action_net = nn.Linear(c.hidden_size, c.num_classes)

    def glimpse(self, images: Tensor, h: Tensor) -> tuple[Tensor, AttentionParams]:
        """Eq. 27 without the error image: the ``(B, C, N, N)`` glimpse read from ``W(h)``."""
        c = self.config
        params = self.read.window(h)
        f_x, f_y = filterbanks(params, c.height, c.width, c.read_size)
        return read_patch(images, f_x, f_y, params.gamma), params

    def run(self, images: Tensor, *, record: bool = False) -> DRAMOutput:
        """Deterministic forward pass: ``T`` glimpses, then the class logits."""
        c = self.config
        check_classification_batch(images, None, c.image_shape, c.num_classes)
        h = images.new_zeros(images.shape[0], c.hidden_size)
        state = (h, h)
        windows, glimpses = [], []
        for _ in range(c.num_glimpses):
            patch, params = self.glimpse(images, state[0])
            if record:
                windows.append(params)
                glimpses.append(patch)
            state = self.lstm(patch.flatten(1), state)
        logits = self.action_net(state[0])
        return DRAMOutput(
            logits, windows if record else None, torch.stack(glimpses, 1) if record else None
        )

    def model(
        self, images: Tensor, labels: Tensor | None = None, *, record: bool = False
    ) -> DRAMOutput:
        """``p(y | x)``: observe (or sample) the label ``y`` inside ``pyro.plate("data")``."""
        pyro.module("dram", self)
        check_classification_batch(images, labels, self.config.image_shape, self.config.num_classes)
        out = self.run(images, record=record)
        with pyro.plate("data", images.shape[0]):
            pyro.sample("y", dist.Categorical(logits=out.logits), obs=labels)
        return out

    def logits(self, images: Tensor, *, deterministic: bool = True) -> Tensor:
        """``(B, num_classes)`` class logits (attention is deterministic)."""
        return self.run(images).logits
