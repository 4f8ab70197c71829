"""DooD model and guide (generative/dood.py, guides/dood.py) on tiny configurations."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from generative.distributions import AbsorbingBernoulli
from generative.dood import DooD
from generative.dood_config import DOOD_CONFIGS, FREE_SIGMA_BOUNDS, DooDConfig, dood_config
from guides.dood import DooDGuide
from inference.nvil import EnumeratedObjective, NVILObjective, make_stop_objective
from tasks.data.glyphs import generate_glyphs, render_glyphs
from tests.tiny import tiny_dood

TINY = tiny_dood(20, hidden=32, render_points=20)


def tiny(**overrides) -> tuple[DooD, DooDGuide]:
    model = DooD(DooDConfig(**{**TINY, **overrides}))
    return model, DooDGuide(model)


def thick_glyphs(size: int, num: int, max_strokes: int, sigma: float = 0.12, seed: int = 3):
    """Glyphs of the glyph generator with at most ``max_strokes`` strokes and wide strokes
    (σ = 0.12 ≈ 1 px at 20×20), grey images and true stroke counts."""
    truth = generate_glyphs(20 * num, seed)
    truth["sigma"] = torch.full_like(truth["sigma"], sigma)
    keep = (truth["num_strokes"] <= max_strokes).nonzero().squeeze(-1)[:num]
    return render_glyphs(truth, size)[keep], truth["num_strokes"][keep]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()


# -- configuration ---------------------------------------------------------------------------
def test_config_round_trip_and_named_configs():
    for name in ("dood", "dood_dR", "dood_EG", "dood_SP", "small"):
        cfg = DOOD_CONFIGS[name]
        assert DooDConfig.from_dict(cfg.to_dict()) == cfg
    paper = DOOD_CONFIGS["dood"]
    assert (paper.height, paper.width, paper.max_strokes, paper.beta) == (50, 50, 6, 4.0)
    assert DOOD_CONFIGS["dood_dR"].renderer == "neural"
    assert not DOOD_CONFIGS["dood_EG"].execution_guidance
    assert not DOOD_CONFIGS["dood_SP"].sequential_prior
    assert dood_config("small", height=32).height == 32
    with pytest.raises(ValueError, match="unknown DooD config fields"):
        DooDConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="stop_mode"):
        DooDConfig(stop_mode="reinforce")
    with pytest.raises(ValueError, match="renderer"):
        DooDConfig(renderer="svg")
    with pytest.raises(ValueError, match="max_strokes"):
        DooDConfig(max_strokes=0)
    with pytest.raises(ValueError, match="unknown DooD config"):
        dood_config("huge")


def test_renderer_parameter_bounds():
    """``sigma_bounds`` / ``omega0_bounds`` bound the MLP-predicted σ_t, ω_t0 (appendix B.2)."""
    cfg = DooDConfig(**TINY, sigma_bounds=[0.10, 0.14], omega0_bounds=(0.45, 0.55))
    assert cfg.sigma_bounds == (0.10, 0.14)  # lists (e.g. from JSON) become tuples
    assert DooDConfig.from_dict(cfg.to_dict()) == cfg
    model = DooD(cfg)
    with torch.no_grad():
        model.render_net.output.bias.copy_(torch.tensor([50.0, -50.0]))
    out = model.generate(8)
    assert torch.all((out["sigma"] > 0.10) & (out["sigma"] <= 0.14))
    assert torch.all((out["omega0"] >= 0.45) & (out["omega0"] < 0.55))
    for bad in ((0.2, 0.1), (0.0, 0.1), (0.1,)):
        with pytest.raises(ValueError, match="sigma_bounds"):
            DooDConfig(sigma_bounds=bad)
    with pytest.raises(ValueError, match="omega0_bounds"):
        DooDConfig(omega0_bounds=(-1.0, 1.0))


# -- the stop variable (Eq. 4) ---------------------------------------------------------------
def test_absorbing_bernoulli_is_exact():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.0])
    alive = torch.tensor([1.0, 1.0, 0.0, 0.0])
    d = AbsorbingBernoulli(logits, alive)
    lp1, lp0 = d.log_prob(torch.ones(4)), d.log_prob(torch.zeros(4))
    ref = torch.distributions.Bernoulli(logits=logits[:2])
    torch.testing.assert_close(lp1[:2], ref.log_prob(torch.ones(2)))
    torch.testing.assert_close(lp0[:2], ref.log_prob(torch.zeros(2)))
    assert torch.all(lp1[2:] == -math.inf)  # a 1 after a 0 is impossible, not e^-15.9
    assert torch.all(lp0[2:] == 0)
    samples = d.sample((2000,))
    assert torch.all(samples[:, 2:] == 0)
    assert abs(samples[:, 0].mean() - torch.sigmoid(logits[0])) < 0.05
    assert d.enumerate_support().shape == (2, 4)
    assert d.expand((3, 4)).sample().shape == (3, 4)


def test_samples_stay_stopped_and_absent_strokes_are_not_drawn():
    model, _ = tiny(stop_bias_init=0.0)  # p_on = 1/2 at every step
    out = model.generate(300)
    z = out["z_pres"]
    assert torch.all(z[:, 1:] <= z[:, :-1])  # once stopped, stopped for good
    counts = torch.bincount(out["num_strokes"].long(), minlength=4)
    assert torch.all(counts > 10), counts  # every count 0..3 occurs
    # after the stop the canvas no longer changes; an empty drawing is an empty canvas
    for t in range(1, 3):
        stopped = z[:, t] == 0
        torch.testing.assert_close(out["canvases"][stopped, t], out["canvases"][stopped, t - 1])
    assert torch.all(out["images"][out["num_strokes"] == 0] == 0)


def test_trace_with_one_after_zero_has_probability_zero():
    model, guide = tiny()
    x = torch.rand(4, 1, 20, 20)
    bad = {"z_pres_0": torch.ones(4), "z_pres_1": torch.zeros(4), "z_pres_2": torch.ones(4)}
    good = {**bad, "z_pres_2": torch.zeros(4)}
    for program, args in ((model.model, (x,)), (guide.guide, (x,))):
        lp_bad = poutine.trace(poutine.condition(program, data=bad)).get_trace(*args)
        lp_good = poutine.trace(poutine.condition(program, data=good)).get_trace(*args)
        assert lp_bad.log_prob_sum() == -math.inf
        assert math.isfinite(lp_good.log_prob_sum().item())
        # the absent strokes' layouts and control points are masked out of the density
        lp_good.compute_log_prob()
        for t in (1, 2):
            for site in ("z_where", "z_what"):
                assert torch.all(lp_good.nodes[f"{site}_{t}"]["log_prob"] == 0)


# -- gradients, memo, records ----------------------------------------------------------------
def _zero_grad_params(modules) -> list[str]:
    names = []
    for prefix, module in modules:
        for name, p in module.named_parameters():
            if p.grad is None or not torch.any(p.grad != 0):
                names.append(f"{prefix}.{name}")
    return names


@pytest.mark.parametrize("renderer", ["spline", "neural"])
def test_gradients_reach_every_parameter(renderer):
    """Through the renderer, the STN, the shared RNNs, the priors, the guide and the baseline."""
    model, guide = tiny(renderer=renderer, stop_bias_init=None, prior_stop_bias_init=None)
    for net in (model.pres_net, guide.pres_net):  # mostly "on", weights kept (not zeroed)
        net.init_output(3.0, weight_scale=1.0)
    x, _ = thick_glyphs(20, 8, 3)
    objective = NVILObjective(4.0, max_steps=3)
    loss, metrics = objective(model, guide, (x,), 0)
    assert metrics["num_strokes"] > 2
    loss.backward()
    assert _zero_grad_params([("model", model), ("guide", guide)]) == []


def test_memo_is_a_pure_cache():
    """Replaying the model on the guide's latents gives the same densities with or without the
    guide's cached per-step computations."""
    model, guide = tiny(stop_bias_init=2.0)
    x = torch.rand(5, 1, 20, 20)
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    cached = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    model.memo.clear()
    fresh = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    cached.compute_log_prob()
    fresh.compute_log_prob()
    for name in ["x"] + [f"{s}_{t}" for t in range(3) for s in ("z_pres", "z_where", "z_what")]:
        torch.testing.assert_close(cached.nodes[name]["log_prob"], fresh.nodes[name]["log_prob"])


def test_records_temperature_and_reconstruct():
    model, guide = tiny()
    out = model.generate(4, temperature=0.3)
    assert out["canvases"].shape == (4, 3, 1, 20, 20)
    assert out["strokes"].shape == (4, 3, 20, 20)
    assert out["control_points"].shape == (4, 3, 4, 2)
    assert out["sigma"].shape == out["omega0"].shape == (4, 3)
    assert torch.all((out["images"] >= 0) & (out["images"] <= 1))
    with pytest.raises(ValueError, match="temperature"):
        model.model(batch_size=2, temperature=0.0)
    # low temperature concentrates the prior: smaller spread of the layouts
    cold = model.generate(200, temperature=0.05)["z_where"][:, 0]
    warm = model.generate(200, temperature=1.0)["z_where"][:, 0]
    assert cold.std(0).mean() < warm.std(0).mean()
    rec = guide.reconstruct(torch.rand(3, 1, 20, 20))
    assert rec["canvases"].shape == (3, 3, 1, 20, 20)
    assert rec["num_strokes"].shape == (3,)


def test_bad_images_raise():
    model, guide = tiny()
    with pytest.raises(ValueError, match=r"\(B, 1, 20, 20\)"):
        model.model(torch.rand(2, 20, 20))
    with pytest.raises(ValueError, match=r"\(B, 1, 20, 20\)"):
        guide.guide(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="batch_size"):
        model.model()


# -- ablations -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dood", "dood_dR", "dood_EG", "dood_SP", "small"])
@pytest.mark.parametrize("stop_mode", ["nvil", "enum"])
def test_every_config_trains_one_step(name, stop_mode):
    cfg = dood_config(name, **TINY, stop_mode=stop_mode)
    model = DooD(cfg)
    guide = DooDGuide(model)
    objective = make_stop_objective(stop_mode, cfg.beta, cfg.max_strokes)
    params = [*model.parameters(), *guide.parameters()]
    if isinstance(objective, torch.nn.Module):
        params += list(objective.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(3, 1, 20, 20)
    loss, metrics = objective(model, guide, (x,), 0)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item()) and math.isfinite(metrics["elbo"])
    assert (guide.baseline is not None) == (stop_mode == "nvil")


# -- learning --------------------------------------------------------------------------------
def _train(model, guide, objective, x, steps, lr=2e-3):
    params = [*model.parameters(), *guide.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for step in range(steps):
        opt.zero_grad()
        loss, metrics = objective(model, guide, (x,), step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        history.append(metrics.get("elbo", metrics.get("elbo_all_strokes")))
    return history


def _reconstruction_l1(guide, x) -> float:
    with torch.no_grad():
        return (guide.reconstruct(x)["images"] - x).abs().sum((1, 2, 3)).mean().item()


def test_small_dood_fits_glyphs_fast():
    """40 steps on 4 one-stroke glyphs (16×16, one stroke allowed, ~5 s): the ELBO rises by
    well over 100 nats and the reconstructions beat the empty canvas."""
    x, _ = thick_glyphs(16, 4, 1, sigma=0.15)  # wider than the official pen: free σ bounds
    model, guide = tiny(
        height=16,
        width=16,
        glimpse_size=8,
        max_strokes=1,
        likelihood_scale=0.1,
        sigma_bounds=FREE_SIGMA_BOUNDS,
    )
    model.train()
    history = _train(model, guide, EnumeratedObjective(4.0, max_steps=1), x, 40)
    empty = x.sum((1, 2, 3)).mean().item()
    assert sum(history[-5:]) / 5 > history[0] + 100, (history[0], history[-5:])
    assert _reconstruction_l1(guide, x) < 0.8 * empty
