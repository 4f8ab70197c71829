"""Stop-variable objectives (inference/nvil.py): exactness of the enumeration, agreement of NVIL
and enumeration in expectation (values and gradients), Pyro's TraceGraph_ELBO consistency."""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import TraceGraph_ELBO
from torch import Tensor

from generative.distributions import AbsorbingBernoulli
from generative.dood import DooD
from generative.dood_config import DooDConfig
from guides.dood import DooDGuide
from inference.nvil import (
    EnumeratedObjective,
    NVILObjective,
    _count_log_probs,
    all_strokes_traces,
    make_stop_objective,
)
from tests.tiny import tiny_dood

TINY = {**tiny_dood(12, hidden=16, render_points=12), "likelihood_scale": 0.3}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()


def tiny_pair(**overrides) -> tuple[DooD, DooDGuide]:
    random_stop_nets = {"stop_bias_init": None, "prior_stop_bias_init": None}
    model = DooD(DooDConfig(**{**TINY, **random_stop_nets, **overrides}))
    guide = DooDGuide(model)
    # stop probabilities near 1/2 at every step, so every stroke count is likely
    for net in (model.pres_net, guide.pres_net):
        net.init_output(0.5, weight_scale=0.3)
    return model, guide


def images(batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, 1, 12, 12)
    x[:, :, 3:9, 5:7] = torch.rand(batch, 1, 6, 2, generator=gen)
    return x


def test_count_log_probs_match_brute_force():
    T, B = 4, 3
    logits, alive0 = torch.randn(T, B), torch.ones(B)
    on = torch.nn.functional.logsigmoid(logits)
    off = torch.nn.functional.logsigmoid(-logits)
    log_pn = _count_log_probs(on, off)  # (B, T + 1)
    torch.testing.assert_close(log_pn.exp().sum(1), torch.ones(B))
    brute = torch.full((B, T + 1), -math.inf)
    for o in itertools.product([0.0, 1.0], repeat=T):
        alive, total = alive0, torch.zeros(B)
        for t in range(T):
            value = torch.full((B,), o[t])
            total = total + AbsorbingBernoulli(logits[t], alive).log_prob(value)
            alive = value
        n = int(sum(o))
        brute[:, n] = torch.logaddexp(brute[:, n], total)  # invalid sequences add exp(-inf) = 0
    torch.testing.assert_close(log_pn, brute)


class _Replayed:
    """A guide whose latents are replayed from a fixed trace (stop sites get conditioned by the
    enumerated objective, which takes precedence)."""

    def __init__(self, guide: DooDGuide, trace):
        self.inner, self.trace = guide, trace

    def guide(self, *args, **kwargs):
        return poutine.replay(self.inner.guide, trace=self.trace)(*args, **kwargs)


def test_enumerated_elbo_is_exact_sum_over_stop_sequences():
    """For fixed strokes, the enumerated objective equals Σ_o q(o) log[p(x, o, z) / q(o, z)]
    over the T + 1 valid stop sequences, computed site by site with Pyro traces; β weights
    exactly the stop terms."""
    model, guide = tiny_pair()
    x = images(4)
    with torch.no_grad():
        draw = poutine.trace(guide.guide).get_trace(x)
    latents = {
        name: draw.nodes[name]["value"]
        for name in draw.stochastic_nodes
        if name.startswith(("z_where", "z_what"))
    }
    beta = 2.5
    exact, exact_beta = torch.zeros(4), torch.zeros(4)
    for n in range(4):
        stops = {f"z_pres_{t}": torch.full((4,), float(t < n)) for t in range(3)}
        data = {**latents, **stops}
        g = poutine.trace(poutine.condition(guide.guide, data=data)).get_trace(x)
        m = poutine.trace(poutine.condition(model.model, data=data)).get_trace(x)
        g.compute_log_prob()
        m.compute_log_prob()
        log_q_stop = sum(g.nodes[f"z_pres_{t}"]["log_prob"] for t in range(3))
        log_p_stop = sum(m.nodes[f"z_pres_{t}"]["log_prob"] for t in range(3))
        rest = sum(
            m.nodes[k]["log_prob"] - (g.nodes[k]["log_prob"] if k in g.nodes else 0)
            for k, site in m.nodes.items()
            if site["type"] == "sample" and not k.startswith(("z_pres", "data"))
        )
        weight = log_q_stop.exp()
        exact = exact + weight * (rest + log_p_stop - log_q_stop)
        exact_beta = exact_beta + weight * (rest + beta * (log_p_stop - log_q_stop))
    objective = EnumeratedObjective(beta, max_steps=3)
    _, _, tensors = objective.evaluate(model, _Replayed(guide, draw), (x,))
    torch.testing.assert_close(tensors["elbo"], exact, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(tensors["elbo_beta"], exact_beta, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(tensors["stroke_count_probs"].sum(1), torch.ones(4))


def test_nvil_elbo_matches_trace_graph_elbo():
    """Same seed, same samples: the NVIL objective's ELBO (β = 1 metric) is Pyro's."""
    model, guide = tiny_pair()
    x = images(6)
    objective = NVILObjective(4.0, max_steps=3)
    pyro.set_rng_seed(5)
    _, metrics = objective(model, guide, (x,), 0)
    pyro.set_rng_seed(5)
    pyro_loss = TraceGraph_ELBO().loss(model.model, guide.guide, x)
    assert metrics["elbo"] == pytest.approx(-pyro_loss / 6, rel=1e-5)
    # Pyro's own estimator uses the guide's baseline_value and trains it by squared error
    guide.zero_grad()
    loss = TraceGraph_ELBO().loss_and_grads(model.model, guide.guide, x)
    assert math.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in guide.baseline.parameters())


def test_nvil_and_enumeration_agree_in_expectation():
    """ELBO values: the NVIL (sampled stops) Monte-Carlo mean and the enumerated (exact in N)
    mean agree within 4 standard errors; gradients of L_β w.r.t. the guide's stop bias (a pure
    REINFORCE + baseline term for NVIL) agree likewise. The objective is in eval mode (no
    running centring, whose batch-dependence would add a small bias)."""
    model, guide = tiny_pair()
    nvil = NVILObjective(4.0, max_steps=3).eval()
    enum = EnumeratedObjective(4.0, max_steps=3)
    bias = guide.pres_net.output.bias
    x = images(4).repeat(32, 1, 1, 1)  # 128 rows, 4 distinct images
    values = {"nvil": [], "enum": []}
    grads = {"nvil": [], "enum": []}
    for _ in range(10):
        for name, objective in (("nvil", nvil), ("enum", enum)):
            guide.zero_grad()
            loss, metrics = objective(model, guide, (x,), 0)
            loss.backward()
            values[name].append(metrics["elbo"])
            grads[name].append(bias.grad.item())
    for series in (values, grads):
        a, b = torch.tensor(series["nvil"]), torch.tensor(series["enum"])
        se = math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se + 1e-6, (a.mean(), b.mean(), se)
    # enumeration has the lower variance (no score function for the stop variable)
    assert torch.tensor(grads["enum"]).var() < torch.tensor(grads["nvil"]).var()


def test_nvil_statistics_and_baseline_training():
    model, guide = tiny_pair()
    objective = NVILObjective(4.0, max_steps=3, decay=0.5)
    # very different images: most of the learning signal's variance is between images, which
    # an input-dependent baseline can learn
    x = torch.linspace(0, 1, 8).view(8, 1, 1, 1).expand(8, 1, 12, 12).contiguous()
    assert set(objective.state_dict()) == {"signal_mean", "signal_var", "updates"}
    objective.eval()
    objective(model, guide, (x,), 0)
    assert torch.all(objective.updates == 0)  # no updates in eval mode
    objective.train()
    params = list(guide.baseline.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    rmse = []
    for step in range(160):
        opt.zero_grad()
        loss, metrics = objective(model, guide, (x,), step)
        loss.backward()
        opt.step()  # only the baseline moves
        rmse.append(metrics["baseline_rmse"])
    assert objective.updates[0] == 160
    assert torch.all(objective.signal_var[:1] > 0)
    assert sum(rmse[-20:]) / 20 < 0.7 * sum(rmse[:10]) / 10, (rmse[:10], rmse[-20:])


class _JumpingSignal:
    """A two-step stop model whose log-likelihood scale is set from outside (``scale``), with a
    guide whose NVIL baseline is poor: fixed per-example noise of standard deviation
    ``baseline_sd`` (standardised units). That is the situation in which the old normalisation
    (statistics of ``ℓ − s·b`` with ``s`` from those statistics) fed back on itself: the
    variance grows by ``decay + (1 − decay)·baseline_sd²`` per step, to inf/NaN."""

    def __init__(self, baseline_sd: float, batch: int):
        self.scale = 1.0
        self.baseline = baseline_sd * torch.randn(batch)
        self.logit = torch.zeros((), requires_grad=True)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            alive = torch.ones(x.shape[0])
            for t in range(2):
                alive = pyro.sample(f"z_pres_{t}", AbsorbingBernoulli(torch.zeros(()), alive))
            loc = alive.unsqueeze(-1).expand(x.shape)
            pyro.sample("x", dist.Normal(loc, 1.0 / self.scale).to_event(1), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            alive = torch.ones(x.shape[0])
            for t in range(2):
                infer = {"baseline": {"baseline_value": self.baseline}}
                fn = AbsorbingBernoulli(self.logit.expand(x.shape[0]), alive)
                alive = pyro.sample(f"z_pres_{t}", fn, infer=infer)


def test_nvil_normalisation_stays_finite_when_the_signal_scale_jumps():
    """The running variance follows the signal's own variance: after the likelihood's scale
    jumps 100-fold (a ~1e4-fold jump of the signal's variance) and back, with a baseline that
    is noise of 2 standard units throughout, the statistics stay finite and bounded by the
    signal's, and they come back down."""
    pyro.set_rng_seed(0)
    pair = _JumpingSignal(baseline_sd=2.0, batch=256)
    objective = NVILObjective(1.0, max_steps=2, decay=0.8).train()
    x = torch.randn(256, 3)
    sds = []
    for step in range(150):
        pair.scale = 100.0 if 50 <= step < 100 else 1.0
        loss, metrics = objective(pair, pair, (x,), step)
        assert math.isfinite(loss.item()) and math.isfinite(metrics["advantage_rms"])
        sds.append(objective.signal_var.sqrt().max().item())
    assert max(sds) < 1e6  # the signal's sd is ~2e4 at the jump; the old loop went to inf
    assert sds[-1] < 0.05 * max(sds)  # and it comes back down


def _gradients(objective, model, guide, x, step=0, seed=0) -> tuple[float, dict[str, Tensor]]:
    pyro.set_rng_seed(seed)
    model.zero_grad()
    guide.zero_grad()
    loss, _ = objective(model, guide, (x,), step)
    loss.backward()
    named = [*model.named_parameters("model"), *guide.named_parameters("guide")]
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in named}
    return loss.item(), grads


@pytest.mark.parametrize("stop_mode", ["enum", "nvil"])
def test_beta_modes_agree_at_beta_one(stop_mode):
    """With β = 1 the paper's reading (β on the stop KL) and the official one (1/β on the
    likelihood in the stop signal) are the same objective: equal losses and gradients."""
    model, guide = tiny_pair()
    x = images(6)
    results = []
    for mode in ("kl", "signal"):
        objective = make_stop_objective(stop_mode, 1.0, 3, beta_mode=mode)
        if stop_mode == "nvil":
            objective.eval()  # no running statistics: both see the same (initial) ones
        results.append(_gradients(objective, model, guide, x))
    (loss_kl, grads_kl), (loss_signal, grads_signal) = results
    assert loss_kl == pytest.approx(loss_signal, rel=1e-6)
    for name, grad in grads_kl.items():
        torch.testing.assert_close(grad, grads_signal[name], rtol=1e-5, atol=1e-6, msg=name)


def test_signal_mode_weights_only_the_count_gradient():
    """Official β (enumerated count): the model's likelihood scale, which q(N) does not depend
    on, gets the plain ELBO's gradient for any β, while the guide's stop network gets another
    one; with the paper's reading β weights the model's stop prior too."""
    model, guide = tiny_pair(likelihood_scale=None)  # a learned scale
    x = images(6)
    plain = _gradients(EnumeratedObjective(1.0, max_steps=3), model, guide, x)[1]
    signal = _gradients(EnumeratedObjective(4.0, max_steps=3, beta_mode="signal"), model, guide, x)[
        1
    ]
    name = "model.likelihood_scale_raw"
    torch.testing.assert_close(signal[name], plain[name], rtol=1e-5, atol=1e-7)
    stop = "guide.pres_net.output.bias"
    assert not torch.allclose(signal[stop], plain[stop], rtol=1e-3)
    kl = _gradients(EnumeratedObjective(4.0, max_steps=3, beta_mode="kl"), model, guide, x)[1]
    assert not torch.allclose(kl["model.pres_net.output.bias"], plain["model.pres_net.output.bias"])


@pytest.mark.parametrize("stop_mode", ["enum", "nvil"])
def test_warmup_forces_every_stroke_then_learns_the_count(stop_mode):
    """Before ``warmup_steps`` the objective is the ELBO given N = T: every stroke on, no
    gradient for either stop network and no NVIL statistics; from that step on, the usual
    objective (the schedule follows the trainer's step, so a resumed run continues it)."""
    model, guide = tiny_pair()
    x = images(6)
    objective = make_stop_objective(stop_mode, 4.0, 3, warmup_steps=5)
    loss, grads = _gradients(objective, model, guide, x, step=4)
    pyro.set_rng_seed(0)
    _, metrics = objective(model, guide, (x,), 4)
    assert metrics["num_strokes"] == 3.0 and "elbo_all_strokes" in metrics
    for name in ("model.pres_net.output.bias", "guide.pres_net.output.bias"):
        assert torch.all(grads[name] == 0), name
    assert grads["guide.what_net.output.bias"].abs().sum() > 0
    if stop_mode == "nvil":
        assert torch.all(objective.updates == 0)
    _, grads = _gradients(objective, model, guide, x, step=5)
    assert grads["guide.pres_net.output.bias"].abs().sum() > 0
    # the forced-strokes loss is minus the ELBO of the all-strokes-on traces
    model_trace, guide_trace = all_strokes_traces(model, guide, (x,), "z_pres", 3)
    assert math.isfinite(model_trace.log_prob_sum().item())


def test_objective_errors():
    with pytest.raises(ValueError, match="stop_mode"):
        make_stop_objective("gumbel", 4.0, 6)
    assert isinstance(make_stop_objective("nvil", 4.0, 6), NVILObjective)
    assert isinstance(make_stop_objective("enum", 4.0, 6), EnumeratedObjective)
    with pytest.raises(ValueError, match="beta"):
        NVILObjective(-1.0)
    model, guide = tiny_pair()
    with pytest.raises(ValueError, match="max_steps"):
        NVILObjective(4.0, max_steps=2)(model, guide, (images(2),), 0)
    with pytest.raises(ValueError, match="max_steps"):
        EnumeratedObjective(4.0, max_steps=2)(model, guide, (images(2),), 0)
