"""DooD's generative model (Liang et al. 2022, "Drawing out of Distribution", sec. 2.1, Eqs. 1–5,
appendices B.1–B.2, C).

For steps ``t = 0 … T−1`` (``T = max_strokes``, 6 in the paper) the model draws::

    o_t ~ p_on(o_t | o_{t−1}, x_<t) = o_{t−1} · Bernoulli(σ(MLP_o(·)))        (Eq. 4)  "z_pres_t"
    l_t ~ p_layout(l_t | x_<t, h^l_t) = Σ_m α_m N(l_t; μ_m, σ_m)              (Eq. 2)  "z_where_t"
    x̃_<t = STN(l_t, x_<t)                                                     (Eq. 2)
    s_t ~ p_stroke(s_t | l_t, x̃_<t, h^s_t) = Π_d Σ_k π_dk N(s_dt; μ_dk, σ_dk) (Eq. 3)  "z_what_t"
    x_t = δR(l_t ⊙ s_t; σ_t, ω_t0)                                            (Eqs. 10–13)
    x_≤t = tanh(Σ_{t' ≤ t} o_t' x_t' / ω1)                                    (Eq. 14)
    x ~ Laplace(x_≤T, b)                                                      (Eq. 5)   "x"

(Eq. 1 is the product of these factors.) ``l_t = (s_x, s_y, t_x, t_y, θ)`` is an affine layout
(:mod:`generative.stn`); ``s_t`` are ``J`` Bézier control points in the canonical frame; the
renderer parameters ``(σ_t, ω_t0)`` come from an MLP (appendix B.2: "not modelled as latent").
Once ``o_t = 0`` every later ``o`` is 0 *exactly*
(:class:`generative.distributions.AbsorbingBernoulli`: a 1 after a 0
has log-probability ``−inf``, not the ``−15.9`` of ``Bernoulli(probs=0)``), and the layout and
stroke of an absent step are masked out of every density and of the canvas.

Networks (appendix B.2): a layout GRU ``h^l_t`` and a stroke GRU ``h^s_t`` (256 units), shared
with the guide (Fig. 2: "two (shared) RNNs"; :class:`guides.dood.DooDGuide` runs them through
:meth:`DooD.layout_stage` / :meth:`DooD.stroke_stage`); :class:`generative.networks.FeatureCNN`
for the canvas-so-far and its glimpse; 2×256 tanh MLPs for the priors and the renderer
parameters. The canvas-so-far fed to the networks is detached (appendix C); the final canvas in
the likelihood is not, so gradients reach every stroke.

Conditioning (our reading of Eqs. 2–4, documented choices):

* RNN inputs: ``h^l_t = GRU_l([l_{t−1}, s_{t−1}, CNN(x_<t)], h^l_{t−1})`` and
  ``h^s_t = GRU_s([l_t, s_{t−1}, CNN(x̃_<t)], h^s_{t−1})`` (the model can compute both, so the
  guide can share them).
* ``p_on`` sees ``[CNN(x_<t), h^l_t]``; ``p_layout`` sees ``[h^l_t, CNN(x_<t)]``; ``p_stroke``
  sees ``[h^s_t, l_t, CNN(x̃_<t)]``; the renderer MLP sees ``[h^s_t, l_t, s_t]``.
* ``ω1`` ("per character", appendix B.1) is one learned scalar; the Laplace scale ``b`` of Eq. 5
  is not given in the paper: by default a learned per-pixel scale in ``[0.01, 1]``
  (``likelihood_scale=None``), or a fixed float.

Ablations (sec. 3.1): ``renderer="neural"`` (DooD-δR) replaces δR by an MLP decoder of ``s_t`` to a
``G × G`` glimpse placed with the inverse STN (same latents and priors);
``execution_guidance=False`` (DooD-EG) removes every dependence on the canvas-so-far (no CNN
inputs; the guide reads the target ``x`` instead of the residual); ``sequential_prior=False``
(DooD-SP) makes the layout and stroke priors unconditional learned GMMs (the same at every step;
``p_on`` still sees the canvas when execution guidance is on).

Initialisation: the layout networks predict identity transforms (appendix C); the stop networks'
last layers start at zero weights with the biases ``prior_stop_bias_init`` (model, official 1)
and ``stop_bias_init`` (guide, official 2 on MNIST, 10 on Omniglot; appendix C: "e.g. 8"); the
renderer MLP starts at ``σ_t`` = one pixel and ``ω_t0 = omega0_init`` (official 0.8). Defaults
where the paper is silent follow the official code (:mod:`generative.dood_config`).

Sampling temperature ``τ`` (appendix D.2.1, "low-temperature sampling" as in sketch-rnn) divides
every mixture and stop logit by ``τ`` and multiplies every component standard deviation by
``√τ``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from generative.bezier import compose_canvas, render_strokes
from generative.checks import check_image_batch
from generative.distributions import AbsorbingBernoulli
from generative.dood_config import (
    CONTROL_BOUND,
    LIKELIHOOD_SCALE_INIT,
    OMEGA1_INIT,
    OMEGA_BOUNDS,
    PRIOR_STD_BOUNDS,
    SIGMA_INIT_PIXELS,
    DooDConfig,
)
from generative.dood_state import (
    DooDState,
    GuideStep,
    LayoutStage,
    Render,
    StrokeStage,
    collect_steps,
)
from generative.layout import (
    LIKELIHOOD_SCALE_BOUNDS,
    bounded,
    bounded_inverse,
    identity_layout_raw,
    layout_means,
)
from generative.memo import ReplayMemo
from generative.networks import MLP, FeatureCNN, RecurrentCore, presence_mlp
from generative.stn import LAYOUT_SIZE, glimpse, place, transform_points

__all__ = ["DooD"]


def _inside(value: float, bounds: tuple[float, float]) -> float:
    """``value`` moved strictly inside ``bounds`` (margin ``0.1 · min(low, high − low)``), so
    :func:`generative.layout.bounded` reaches it with a finite raw output (an initial value)."""
    low, high = bounds
    margin = 0.1 * min(low, high - low)
    return min(max(value, low + margin), high - margin)


class DooD(nn.Module):
    """DooD's generative model (Eqs. 1–5) and its Pyro :meth:`model`."""

    def __init__(self, config: DooDConfig):
        super().__init__()
        self.config = c = config
        J, G, hid, feat = c.control_points, c.glimpse_size, c.hidden_size, c.feature_size
        mlp_hidden = (c.mlp_hidden, c.mlp_hidden)
        eg = c.execution_guidance
        what_size = 2 * J
        if eg:
            self.canvas_cnn = FeatureCNN(c.height, c.width, 1, feat, stride=c.cnn_stride)
            self.glimpse_cnn = FeatureCNN(G, G, 1, feat, stride=c.cnn_stride)
        extra = feat if eg else 0
        self.layout_rnn = RecurrentCore(LAYOUT_SIZE + what_size + extra, hid)
        self.stroke_rnn = RecurrentCore(LAYOUT_SIZE + what_size + extra, hid)
        # Eq. 4 prior on o_t.
        self.pres_net = presence_mlp(self._pres_input_size(), mlp_hidden, c.prior_stop_bias_init)
        # Eq. 2 layout GMM: M logits, M×5 means, M×5 standard deviations.
        M, K = c.layout_components, c.stroke_components
        self.layout_net = MLP(self._layout_input_size(), M + 2 * M * LAYOUT_SIZE, mlp_hidden)
        with torch.no_grad():  # appendix C: predict identity transforms initially
            rows = slice(M, M + M * LAYOUT_SIZE)
            self.layout_net.output.weight[rows] = 0.0
            identity = identity_layout_raw(c.layout_ranges)
            self.layout_net.output.bias[rows] = torch.tensor(identity).repeat(M)
        # Eq. 3 per-control-point GMM: J×K logits, J×K×2 means, J×K×2 standard deviations.
        self.stroke_net = MLP(self._stroke_input_size(), J * K + 4 * J * K, mlp_hidden)
        if c.renderer == "spline":  # renderer parameters (σ_t, ω_t0), appendix B.1–B.2
            self.render_net = MLP(hid + LAYOUT_SIZE + what_size, 2, mlp_hidden)
            sigma = _inside(SIGMA_INIT_PIXELS * 2.0 / (max(c.height, c.width) - 1), c.sigma_bounds)
            omega0 = _inside(c.omega0_init, c.omega0_bounds)
            self.render_net.init_output(
                [
                    bounded_inverse(sigma, *c.sigma_bounds),
                    bounded_inverse(omega0, *c.omega0_bounds),
                ],
                weight_scale=1.0,
            )
        else:  # DooD-δR: an MLP decoder to a G×G glimpse (like AIR's)
            self.decoder = MLP(what_size, G * G, mlp_hidden)
        self.omega1_raw = nn.Parameter(torch.tensor(bounded_inverse(OMEGA1_INIT, *OMEGA_BOUNDS)))
        if c.likelihood_scale is None:
            init = bounded_inverse(LIKELIHOOD_SCALE_INIT, *LIKELIHOOD_SCALE_BOUNDS)
            self.likelihood_scale_raw = nn.Parameter(torch.full((1, c.height, c.width), init))
        self.register_buffer("_one", torch.ones(()), persistent=False)
        self.memo: ReplayMemo[GuideStep] = ReplayMemo(keep_all=True)

    # -- sizes --------------------------------------------------------------------------------
    def _pres_input_size(self) -> int:
        c = self.config
        size = (c.feature_size if c.execution_guidance else 0) + (
            c.hidden_size if c.sequential_prior else 0
        )
        return size or 1

    def _layout_input_size(self) -> int:
        c = self.config
        if not c.sequential_prior:
            return 1
        return c.hidden_size + (c.feature_size if c.execution_guidance else 0)

    def _stroke_input_size(self) -> int:
        c = self.config
        if not c.sequential_prior:
            return 1
        return c.hidden_size + LAYOUT_SIZE + (c.feature_size if c.execution_guidance else 0)

    def _constant(self, batch_size: int) -> Tensor:
        return self._one.expand(batch_size, 1)

    def param_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.parameters())

    @property
    def num_render_points(self) -> int:
        """S of Eq. 10: ``render_points`` in training mode, ``eval_render_points`` in eval mode."""
        c = self.config
        return c.render_points if self.training else c.eval_render_points

    # -- deterministic pieces shared with the guide -------------------------------------------
    def initial_state(self, batch_size: int) -> DooDState:
        """State before step 0: learned RNN states, empty canvas, ``o_{−1} = 1``."""
        c = self.config
        ref = self._one
        return DooDState(
            h_layout=self.layout_rnn.initial(batch_size),
            h_stroke=self.stroke_rnn.initial(batch_size),
            z_pres=ref.expand(batch_size),
            z_where=ref.new_zeros(batch_size, LAYOUT_SIZE),
            z_what=ref.new_zeros(batch_size, c.control_points, 2),
            strokes=(),
            masks=(),
            canvas=self.initial_canvas(batch_size),
        )

    def initial_canvas(self, batch_size: int) -> Tensor:
        """The empty canvas ``x_<0`` (Eq. 14 with no strokes: ``tanh(0) = 0``), (B, 1, H, W)."""
        c = self.config
        return self._one.new_zeros(batch_size, 1, c.height, c.width)

    def layout_stage(self, state: DooDState) -> LayoutStage:
        """``h^l_t = GRU_l([l_{t−1}, s_{t−1}, CNN(x_<t)], h^l_{t−1})`` (canvas detached)."""
        parts = [state.z_where, state.z_what.flatten(1)]
        features = None
        if self.config.execution_guidance:
            features = self.canvas_cnn(state.canvas)
            parts.append(features)
        return LayoutStage(self.layout_rnn(torch.cat(parts, -1), state.h_layout), features)

    def stroke_stage(self, state: DooDState, z_where: Tensor) -> StrokeStage:
        """``x̃_<t = STN(l_t, x_<t)`` (Eq. 2) and ``h^s_t = GRU_s([l_t, s_{t−1}, CNN(x̃_<t)], ·)``."""
        parts = [z_where, state.z_what.flatten(1)]
        features = None
        if self.config.execution_guidance:
            window = glimpse(state.canvas, z_where, self.config.glimpse_size)
            features = self.glimpse_cnn(window)
            parts.append(features)
        return StrokeStage(self.stroke_rnn(torch.cat(parts, -1), state.h_stroke), features)

    def render_parameters(
        self, stage: StrokeStage, z_where: Tensor, z_what: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Renderer parameters ``(σ_t, ω_t0)`` predicted by an MLP (appendix B.2), bounded to
        ``config.sigma_bounds`` / ``config.omega0_bounds`` (by default
        :data:`generative.dood_config.SIGMA_BOUNDS` / ``OMEGA_BOUNDS``)."""
        raw = self.render_net(torch.cat([stage.h_stroke, z_where, z_what.flatten(1)], -1))
        c = self.config
        return bounded(raw[:, 0], *c.sigma_bounds), bounded(raw[:, 1], *c.omega0_bounds)

    def omega1(self) -> Tensor:
        """The canvas tanh temperature ``ω1`` of Eq. 14 (one learned scalar)."""
        return bounded(self.omega1_raw, *OMEGA_BOUNDS)

    def render(self, stage: StrokeStage, z_where: Tensor, z_what: Tensor) -> Render:
        """Rendering module: ``x_t = δR(l_t ⊙ s_t)`` (sec. 2.1, Eqs. 10–13), or for DooD-δR an MLP
        glimpse placed with the inverse STN."""
        c = self.config
        if c.renderer == "neural":
            size = c.glimpse_size
            patch = torch.sigmoid(self.decoder(z_what.flatten(1))).view(-1, 1, size, size)
            return Render(place(patch, z_where, c.height, c.width)[:, 0], None, None, None)
        sigma, omega0 = self.render_parameters(stage, z_where, z_what)
        points = transform_points(z_what, z_where)  # s̃_t = l_t ⊙ s_t
        image = render_strokes(points, sigma, omega0, c.height, c.width, self.num_render_points)
        return Render(image, points, sigma, omega0)

    def canvas_of(self, strokes: tuple[Tensor, ...], masks: tuple[Tensor, ...]) -> Tensor:
        """Eq. 14: ``tanh(Σ_t o_t x_t / ω1)`` as ``(B, 1, H, W)`` (not detached)."""
        if not strokes:
            raise ValueError("canvas_of: need at least one stroke")
        canvas = compose_canvas(torch.stack(strokes, 1), self.omega1(), torch.stack(masks, 1))
        return canvas.unsqueeze(1)

    def advance(
        self,
        state: DooDState,
        stage_l: LayoutStage,
        stage_s: StrokeStage,
        z_pres: Tensor,
        z_where: Tensor,
        z_what: Tensor,
        render: Render,
    ) -> DooDState:
        """Compositing module (Eq. 14): add ``o_t x_t`` to the canvas; the canvas kept for
        conditioning is detached (appendix C)."""
        strokes = (*state.strokes, render.image)
        masks = (*state.masks, z_pres)
        canvas = self.canvas_of(strokes, masks).detach()
        return DooDState(
            stage_l.h_layout, stage_s.h_stroke, z_pres, z_where, z_what, strokes, masks, canvas
        )

    # -- distributions ------------------------------------------------------------------------
    def stop_prior(
        self, state: DooDState, stage: LayoutStage, temperature: float = 1.0
    ) -> AbsorbingBernoulli:
        """Eq. 4: ``p_on(o_t | o_{t−1}, x_<t) = o_{t−1} · Bernoulli(σ(MLP_o(·)))`` with inputs
        ``[CNN(x_<t), h^l_t]`` (what the ablation keeps of them; a constant if nothing)."""
        parts = []
        if self.config.execution_guidance:
            parts.append(stage.canvas_features)
        if self.config.sequential_prior:
            parts.append(stage.h_layout)
        inputs = torch.cat(parts, -1) if parts else self._constant(state.z_pres.shape[0])
        logits = self.pres_net(inputs).squeeze(-1) / temperature
        return AbsorbingBernoulli(logits, state.z_pres)

    def layout_prior(self, stage: LayoutStage, temperature: float = 1.0) -> dist.Distribution:
        """Eq. 2: GMM over ``l_t = (scale, translation, rotation)`` with diagonal components."""
        c = self.config
        batch = stage.h_layout.shape[0]
        if c.sequential_prior:
            parts = [stage.h_layout]
            if c.execution_guidance:
                parts.append(stage.canvas_features)
            inputs = torch.cat(parts, -1)
        else:
            inputs = self._constant(batch)
        M = c.layout_components
        out = self.layout_net(inputs)
        logits = out[:, :M] / temperature
        raw_loc = out[:, M : M + M * LAYOUT_SIZE].reshape(batch, M, LAYOUT_SIZE)
        loc = layout_means(raw_loc, c.layout_ranges)
        raw_std = out[:, M + M * LAYOUT_SIZE :].reshape(batch, M, LAYOUT_SIZE)
        scale = bounded(raw_std, *PRIOR_STD_BOUNDS) * math.sqrt(temperature)
        components = dist.Normal(loc, scale).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)

    def stroke_prior(
        self, stage: StrokeStage, z_where: Tensor, temperature: float = 1.0
    ) -> dist.Distribution:
        """Eq. 3: an independent GMM per control point ``d`` (K components, diagonal)."""
        c = self.config
        batch = z_where.shape[0]
        if c.sequential_prior:
            parts = [stage.h_stroke, z_where]
            if c.execution_guidance:
                parts.append(stage.glimpse_features)
            inputs = torch.cat(parts, -1)
        else:
            inputs = self._constant(batch)
        J, K = c.control_points, c.stroke_components
        out = self.stroke_net(inputs)
        logits = out[:, : J * K].reshape(batch, J, K) / temperature
        loc = CONTROL_BOUND * torch.tanh(out[:, J * K : 3 * J * K].reshape(batch, J, K, 2))
        raw_std = out[:, 3 * J * K :].reshape(batch, J, K, 2)
        scale = bounded(raw_std, *PRIOR_STD_BOUNDS) * math.sqrt(temperature)
        components = dist.Normal(loc, scale).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components).to_event(1)

    def likelihood_scale(self) -> Tensor:
        """Laplace scale ``b`` of Eq. 5, ``(1, H, W)`` (learned) or a scalar (fixed)."""
        if self.config.likelihood_scale is None:
            return bounded(self.likelihood_scale_raw, *LIKELIHOOD_SCALE_BOUNDS)
        return self._one * self.config.likelihood_scale

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        """Eq. 5: ``Laplace(x | x_≤T, b)`` over all pixels; ``canvas`` is ``(B, 1, H, W)``."""
        return dist.Laplace(canvas, self.likelihood_scale().expand_as(canvas)).to_event(3)

    # -- Pyro model ---------------------------------------------------------------------------
    def check_images(self, images: Tensor) -> None:
        check_image_batch(images, (1, self.config.height, self.config.width), "DooD")

    def model(
        self,
        images: Tensor | None = None,
        *,
        batch_size: int | None = None,
        temperature: float = 1.0,
        record: bool = False,
    ) -> Tensor:
        """Pyro model (Eq. 1). ``images`` ``(B, 1, H, W)`` are observed at site ``"x"``; with
        ``images=None`` it generates ``batch_size`` drawings. Sites per step ``t``:
        ``"z_pres_{t}"`` (B,), ``"z_where_{t}"`` (B, 5), ``"z_what_{t}"`` (B, J, 2). With
        ``record=True`` deterministic sites ``"canvas_{t}"`` (B, 1, H, W; canvas after step t,
        not detached), ``"stroke_{t}"`` (B, H, W) and, for δR, ``"control_points_{t}"``
        (B, J, 2, canvas coordinates), ``"sigma_{t}"``, ``"omega0_{t}"`` (B,) are added.
        Returns the final canvas ``x_≤T`` (B, 1, H, W)."""
        pyro.module("dood_model", self)
        if images is not None:
            self.check_images(images)
            batch_size = images.shape[0]
        if batch_size is None:
            raise ValueError("DooD.model needs images or batch_size")
        if not temperature > 0:
            raise ValueError(f"DooD.model: temperature must be > 0, found {temperature}")
        c = self.config
        state = self.initial_state(batch_size)
        versions = self.param_versions()
        reuse = True
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(c.max_strokes)):
                entry = self.memo.value(t) if reuse and self.memo.hits(t, versions) else None
                reuse = entry is not None
                stage_l = entry.layout if entry is not None else self.layout_stage(state)
                z_pres = pyro.sample(f"z_pres_{t}", self.stop_prior(state, stage_l, temperature))
                present = z_pres > 0
                z_where = pyro.sample(
                    f"z_where_{t}", self.layout_prior(stage_l, temperature).mask(present)
                )
                if entry is None or not self.memo.hits(t, versions, z_pres, z_where):
                    entry, reuse = None, False
                    stage_s = self.stroke_stage(state, z_where)
                else:
                    stage_s = entry.stroke
                z_what = pyro.sample(
                    f"z_what_{t}", self.stroke_prior(stage_s, z_where, temperature).mask(present)
                )
                if entry is None or not self.memo.hits(t, versions, z_pres, z_where, z_what):
                    reuse = False
                    render = self.render(stage_s, z_where, z_what)
                    state = self.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
                else:
                    render, state = entry.render, entry.state
                if record:
                    self._record(t, state, render)
            self.memo.clear()
            canvas = self.canvas_of(state.strokes, state.masks)
            pyro.sample("x", self.likelihood(canvas), obs=images)
        return canvas

    def _record(self, t: int, state: DooDState, render: Render) -> None:
        pyro.deterministic(f"canvas_{t}", self.canvas_of(state.strokes, state.masks), event_dim=3)
        pyro.deterministic(f"stroke_{t}", render.image, event_dim=2)
        if render.control_points is not None:
            pyro.deterministic(f"control_points_{t}", render.control_points, event_dim=2)
            pyro.deterministic(f"sigma_{t}", render.sigma, event_dim=0)
            pyro.deterministic(f"omega0_{t}", render.omega0, event_dim=0)

    def forward(self, images: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(images, **kwargs)

    @torch.no_grad()
    def generate(self, num_samples: int, temperature: float = 1.0) -> dict[str, Tensor]:
        """Unconditional samples (appendix D.2.1) with every step recorded; see
        :func:`generative.dood_state.collect_steps` for the keys."""
        trace = pyro.poutine.trace(self.model).get_trace(
            batch_size=num_samples, temperature=temperature, record=True
        )
        return collect_steps(trace, self.config)
