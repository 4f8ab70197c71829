"""Tests of the AIR baselines (generative/air.py, guides/air.py) with DooD's stop objectives."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from generative.air import (
    AIR_CONFIGS,
    WHERE_SIZE,
    AirConfig,
    air_config,
    air_model_config,
    where_to_layout,
)
from guides.air import AirGuide, build_air, where_means
from inference.iwae import importance_log_weights
from inference.nvil import EnumeratedObjective, NVILObjective, make_stop_objective
from tests.tiny import AIR_TINY

SIZE = AIR_TINY["height"]


def tiny(**overrides) -> tuple:
    torch.manual_seed(0)
    pyro.clear_param_store()
    return build_air(AirConfig(**{**AIR_TINY, **overrides}).to_dict())


def blobs(n: int, seed: int = 0) -> torch.Tensor:
    """1–2 bright squares of side 4 at random places on a dark 16×16 canvas."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, SIZE, SIZE)
    for i in range(n):
        for _ in range(int(torch.randint(1, 3, (), generator=gen))):
            r, c = torch.randint(0, SIZE - 4, (2,), generator=gen).tolist()
            images[i, 0, r : r + 4, c : c + 4] = 1.0
    return images


def traces(model, guide, x):
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    replayed = poutine.replay(model.model, trace=guide_trace)
    return poutine.trace(replayed).get_trace(x), guide_trace


@pytest.mark.parametrize("difference", [False, True])
def test_trace_sites_and_shapes(difference: bool) -> None:
    model, guide = tiny(difference=difference)
    x = blobs(5)
    model_trace, guide_trace = traces(model, guide, x)
    latent = [f"{k}_{t}" for t in range(3) for k in ("z_pres", "z_where", "z_what")]
    guide_sites = [n for n, s in guide_trace.nodes.items() if s["type"] == "sample"]
    assert [n for n in guide_sites if n != "data"] == latent  # z_pres first in every step
    model_sites = [n for n, s in model_trace.nodes.items() if s["type"] == "sample"]
    assert [n for n in model_sites if n != "data"] == [*latent, "x"]
    assert model_trace.nodes["x"]["is_observed"]
    for t in range(3):
        assert guide_trace.nodes[f"z_pres_{t}"]["value"].shape == (5,)
        assert guide_trace.nodes[f"z_where_{t}"]["value"].shape == (5, WHERE_SIZE)
        assert guide_trace.nodes[f"z_what_{t}"]["value"].shape == (5, 4)
        baseline = guide_trace.nodes[f"z_pres_{t}"]["infer"]["baseline"]["baseline_value"]
        assert baseline.shape == (5,) and baseline.requires_grad  # trains the baseline net
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    for name in latent:
        assert model_trace.nodes[name]["log_prob"].shape == (5,)
        assert torch.isfinite(guide_trace.nodes[name]["log_prob"]).all()
    assert model_trace.nodes["x"]["log_prob"].shape == (5,)


def test_stopped_stays_stopped_exactly() -> None:
    model, guide = tiny(stop_bias_init=0.0)  # q(z_pres = 1) = 1/2 at every live step
    x = blobs(400, seed=1)
    model_trace, guide_trace = traces(model, guide, x)
    pres = torch.stack([guide_trace.nodes[f"z_pres_{t}"]["value"] for t in range(3)], 1)
    assert ((pres == 0) | (pres == 1)).all()
    assert (pres[:, 1:] <= pres[:, :-1]).all()  # a 0 is followed only by 0s
    counts = torch.bincount(pres.sum(1).long(), minlength=4)
    assert (counts > 20).all()  # every stroke count 0…3 occurs
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    for t in range(1, 3):
        dead = pres[:, t - 1] == 0
        for role, tr in (("model", model_trace), ("guide", guide_trace)):
            for site in ("z_pres", "z_where", "z_what"):
                lp = tr.nodes[f"{site}_{t}"]["log_prob"]
                assert (lp[dead] == 0).all(), (role, site, t)  # exactly nothing after a stop
        prior = model_trace.nodes[f"z_pres_{t}"]["fn"]
        assert (prior.log_prob(torch.ones(400))[dead] == -math.inf).all()
    # prior samples stop for good too
    generated = model.generate(300)
    assert (generated["z_pres"][:, 1:] <= generated["z_pres"][:, :-1]).all()
    # absent steps add nothing to the canvas
    canvas = model_trace.nodes["x"]["fn"].base_dist.loc
    strokes = torch.zeros_like(canvas)
    for t in range(3):
        z_what = guide_trace.nodes[f"z_what_{t}"]["value"]
        z_where = guide_trace.nodes[f"z_where_{t}"]["value"]
        strokes += pres[:, t, None, None, None] * model.render(z_what, z_where)
    torch.testing.assert_close(canvas, strokes)


@pytest.mark.parametrize("difference", [False, True])
def test_difference_air_reads_the_residual_and_vanilla_the_target(difference: bool) -> None:
    model, guide = tiny(difference=difference, stop_bias_init=20.0)  # always continue
    seen: list[torch.Tensor] = []
    guide.image_cnn.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    x = blobs(3, seed=2)
    _, guide_trace = traces(model, guide, x)
    if not difference:
        assert len(seen) == 1 and torch.equal(seen[0], x)  # CNN(x) once, reused every step
        return
    assert len(seen) == 3 and torch.equal(seen[0], x)
    canvas = torch.zeros_like(x)
    for t in range(2):
        z_what = guide_trace.nodes[f"z_what_{t}"]["value"]
        z_where = guide_trace.nodes[f"z_where_{t}"]["value"]
        canvas = canvas + model.render(z_what, z_where).detach()
        torch.testing.assert_close(seen[t + 1], x - canvas)  # Δx_t = x − x_<t


def test_guide_starts_at_identity_transform() -> None:
    model, guide = tiny()
    h = torch.randn(7, 16)
    loc = guide.where_posterior(h).base_dist.loc
    torch.testing.assert_close(loc, torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(7, 4))
    layout = where_to_layout(torch.tensor([[0.5, 0.1, -0.2, 0.3]]))
    torch.testing.assert_close(layout, torch.tensor([[0.5, 0.5, 0.1, -0.2, 0.3]]))
    assert where_means(torch.zeros(2, 4)).shape == (2, 4)


@pytest.mark.parametrize("mode", ["nvil", "enum"])
def test_one_training_step_is_finite_and_changes_parameters(mode: str) -> None:
    model, guide = tiny(stop_mode=mode)
    objective = make_stop_objective(mode, model.config.beta, model.config.max_steps)
    assert isinstance(objective, NVILObjective if mode == "nvil" else EnumeratedObjective)
    assert objective.beta == 5.0  # appendix C: β = 5 for AIR
    params = [*model.parameters(), *guide.parameters()]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss, metrics = objective(model, guide, (blobs(8),), 0)
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in metrics.values())
    loss.backward()
    grads = {
        "decoder": model.decoder.output.weight.grad,
        "likelihood_scale": model.likelihood_scale_raw.grad,
        "pres_net": guide.pres_net.output.weight.grad,
        "where_net": guide.where_net.output.weight.grad,
        "what_net": guide.what_net.output.weight.grad,
        "image_cnn": guide.image_cnn.linear.weight.grad,
        "glimpse_cnn": guide.glimpse_cnn.linear.weight.grad,
    }
    if mode == "nvil":
        grads["baseline"] = guide.baseline.output.weight.grad
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    optimizer.step()
    changed = [not torch.equal(a, p.detach()) for a, p in zip(before, params, strict=True)]
    assert sum(changed) >= 0.9 * len(params)


def test_tiny_air_loss_decreases() -> None:
    model, guide = tiny(difference=True)
    objective = NVILObjective(model.config.beta, max_steps=model.config.max_steps)
    params = [*model.parameters(), *guide.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    data = blobs(256, seed=3)
    elbos = []
    for step in range(40):
        x = data[(step * 32) % 256 : (step * 32) % 256 + 32]
        optimizer.zero_grad()
        loss, metrics = objective(model, guide, (x,), step)
        loss.backward()
        optimizer.step()
        elbos.append(metrics["elbo"])
    first, last = sum(elbos[:10]) / 10, sum(elbos[-10:]) / 10
    assert last > first + 25, (first, last)  # per-image ELBO (nats) improves clearly


def test_iwae_estimates_are_finite() -> None:
    model, guide = tiny()
    log_w = importance_log_weights(model.model, guide.guide, blobs(4), num_particles=5)
    assert log_w.shape == (5, 4) and torch.isfinite(log_w).all()


def test_configs_round_trip_and_validate() -> None:
    assert set(AIR_CONFIGS) == {"air", "difference_air", "small"}
    assert not AIR_CONFIGS["air"].difference and AIR_CONFIGS["difference_air"].difference
    for name in AIR_CONFIGS:
        config = air_model_config(name, (1, 50, 50))
        model, guide = build_air(config)
        assert isinstance(guide, AirGuide) and model.config == AirConfig.from_dict(config)
        assert model.config.beta == 5.0 and model.config.max_steps == 6
        # the model is shared by reference: the guide's state holds only its own networks
        assert not any(key.startswith("decoder") for key in guide.state_dict())
    assert air_config("small", height=28, width=28).height == 28
    with pytest.raises(ValueError, match="unknown AIR config"):
        air_config("dair")
    with pytest.raises(ValueError, match="unknown AIR config fields"):
        AirConfig.from_dict({"z_dim": 3})
    with pytest.raises(ValueError, match="likelihood must be one of"):
        AirConfig(likelihood="bernoulli")
    with pytest.raises(ValueError, match="1 channel"):
        air_model_config("air", (3, 50, 50))
    model, guide = tiny()
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 16, 16\)"):
        guide.guide(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="needs images or batch_size"):
        model.model()


def test_normal_likelihood_option() -> None:
    model, guide = tiny(likelihood="normal")
    model_trace, _ = traces(model, guide, blobs(2))
    assert type(model_trace.nodes["x"]["fn"].base_dist).__name__ == "Normal"
