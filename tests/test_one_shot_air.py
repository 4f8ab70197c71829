"""Type-token scoring of one-shot classification with AIR (tasks/one_shot/air_tokens.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from generative.air import AirConfig
from tasks.cli import main
from tasks.dood import FAMILY
from tasks.one_shot.air_tokens import AirTokens, AirTypes, air_token_model, render_parts
from tasks.one_shot.tokens import (
    OFFICIAL_CODE,
    TypeTokenSettings,
    token_affine,
    warp_canvas,
)
from tasks.one_shot.type_token import TypeTokenScorer, type_token_family
from tests.test_one_shot import _fake_archive, _run_of
from tests.test_one_shot_scoring import save_untrained
from tests.tiny import AIR_TINY

SIZE = AIR_TINY["height"]  # 16


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _air(name: str = "air", seed: int = 0):
    torch.manual_seed(seed)
    config = AirConfig(**AIR_TINY, difference=name == "difference-air").to_dict()
    model, guide = FAMILY.model(name).build(config)
    return model.eval(), guide.eval(), config


def _images(num: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(num, 1, SIZE, SIZE, generator=gen) < 0.2).float()


def _hand_types(num: int, k: int = 2, seed: int = 0) -> AirTypes:
    """Types of ``num`` images with every step present but the last of the second type."""
    gen = torch.Generator().manual_seed(seed)
    t, d = AIR_TINY["max_steps"], AIR_TINY["z_what_size"]
    z_where = torch.tensor([0.6, 0.0, 0.0, 0.0]) + 0.2 * torch.randn(num, k, t, 4, generator=gen)
    present = torch.ones(num, k, t, dtype=torch.bool)
    present[:, 1:, -1] = False
    return AirTypes(
        torch.randn(num, k, t, d, generator=gen),
        z_where,
        present,
        torch.randn(num, k, generator=gen),
    )


# ----------------------------------------------------------------------------- the warp
def test_warp_moves_ink_as_the_affine_moves_points() -> None:
    canvas = torch.zeros(1, 1, 5, 5)
    canvas[0, 0, 2, 4] = 1.0  # (x, y) = (1, 0): column 4, row 2
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(warp_canvas(canvas, identity), canvas)
    # 90°: (x, y) -> (-y, x) = (0, 1): column 2, row 4 (as apply_affine maps the point)
    quarter = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])
    expected = torch.zeros_like(canvas)
    expected[0, 0, 4, 2] = 1.0
    torch.testing.assert_close(warp_canvas(canvas, quarter), expected, atol=1e-6, rtol=0)
    shift = torch.tensor([[[1.0, 0.0, -0.5], [0.0, 1.0, 0.5]]])  # one pixel left, one down
    expected = torch.zeros_like(canvas)
    expected[0, 0, 3, 3] = 1.0
    torch.testing.assert_close(warp_canvas(canvas, shift), expected, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- token model
def _trace(model, types, raw, settings, images=None, noisy=None):
    data = {"what_noise": types.z_what if noisy is None else noisy, "affine": raw}
    conditioned = poutine.condition(air_token_model, data=data)
    likelihood = model.likelihood
    trace = poutine.trace(conditioned).get_trace(types, model, likelihood, settings, images)
    trace.compute_log_prob()
    return trace


def test_affine_is_applied_to_the_rendering_that_is_scored() -> None:
    model, _, _ = _air()
    types = _hand_types(3).elements(torch.arange(6))
    settings = TypeTokenSettings()
    canvas = render_parts(model, types.z_what, types.z_where, types.present)
    assert canvas.shape == (6, 1, SIZE, SIZE) and canvas.abs().sum() > 0
    identity = _trace(model, types, torch.zeros(6, 7), settings)
    torch.testing.assert_close(identity.nodes["x"]["fn"].base_dist.loc, canvas)
    raw = torch.tensor([[1.5, -1.0, 1.0, -2.0, 1.5, 0.5, -0.5]]).expand(6, 7)
    moved = _trace(model, types, raw, settings)
    scored = moved.nodes["x"]["fn"].base_dist.loc
    torch.testing.assert_close(moved.nodes["canvas"]["value"], canvas)  # the rendering itself
    torch.testing.assert_close(scored, warp_canvas(canvas, token_affine(raw, settings)))
    torch.testing.assert_close(moved.nodes["token_canvas"]["value"], scored)
    assert (scored - canvas).abs().amax() > 0.05  # the affine changed the scored image
    # the likelihood of an image differs with it (not the untransformed image scored)
    images = _images(6, seed=1)
    lp_identity = _trace(model, types, torch.zeros(6, 7), settings, images).nodes["x"]["log_prob"]
    lp_moved = _trace(model, types, raw, settings, images).nodes["x"]["log_prob"]
    assert not torch.allclose(lp_identity, lp_moved)


def test_z_what_noise_density_and_reductions() -> None:
    model, _, _ = _air()
    types = _hand_types(2).elements(torch.arange(4))
    gen = torch.Generator().manual_seed(0)
    noisy = types.z_what + 0.05 * torch.randn(types.z_what.shape, generator=gen)
    counts = types.present.sum(-1).double()
    mask = types.present[..., None].double()
    for sigma in (0.1, 0.3):
        by_hand = (dist.Normal(types.z_what, sigma).log_prob(noisy).double() * mask).sum((1, 2))
        summed = TypeTokenSettings(what_noise=sigma, motor_reduction="sum")
        mean = TypeTokenSettings(what_noise=sigma)
        lp = _trace(model, types, torch.zeros(4, 7), summed, noisy=noisy).nodes["what_noise"]
        torch.testing.assert_close(lp["log_prob"].double(), by_hand)
        lp = _trace(model, types, torch.zeros(4, 7), mean, noisy=noisy).nodes["what_noise"]
        torch.testing.assert_close(lp["log_prob"].double(), by_hand / counts)
    flat = TypeTokenSettings(affine_prior="flat")
    assert (_trace(model, types, torch.zeros(4, 7), flat).nodes["affine"]["log_prob"] == 0).all()
    with pytest.raises(ValueError, match="what_noise"):
        TypeTokenSettings(what_noise=0.0)


# ----------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("name", ["air", "difference-air"])
def test_a_tiny_air_scores_a_run_end_to_end(name: str) -> None:
    model, guide, _ = _air(name)
    supports, queries = _images(4, seed=2), _images(3, seed=3)
    assert isinstance(type_token_family(model, guide), AirTokens)
    before = [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]
    settings = TypeTokenSettings(**{**OFFICIAL_CODE, "type_samples": 2, "type_candidates": 3})
    settings = TypeTokenSettings(**{**settings.to_dict(), "token_steps": 3, "two_way": True})
    pyro.set_rng_seed(0)
    scorer = TypeTokenScorer(model, guide, settings)
    scores = scorer(_run_of(supports > 0.5, queries > 0.5, [0, 2, 1]))
    assert scores.shape == (3, 4) and torch.isfinite(scores).all()
    assert scorer.tokens["run99"].shape == (3, 1, SIZE, SIZE)
    assert torch.isfinite(scorer.tokens["run99"]).all() and scorer.num_points is None
    assert {"types_seconds", "tokens_seconds"} <= set(scorer.timings["run99"])
    after = [*model.parameters(), *guide.parameters()]
    assert all(p.grad is None and p.requires_grad for p in after)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_types_from_an_air_guide_and_the_fit_improves_on_the_start() -> None:
    model, guide, _ = _air()
    family = AirTokens(model, guide)
    images = _images(3, seed=4)
    pyro.set_rng_seed(1)
    types = family.infer_types(images, TypeTokenSettings(type_samples=4, type_rows=5))
    t, d = AIR_TINY["max_steps"], AIR_TINY["z_what_size"]
    assert types.z_what.shape == (3, 4, t, d) and types.z_where.shape == (3, 4, t, 4)
    assert types.present.dtype == torch.bool and torch.isfinite(types.log_weights).all()
    assert (types.present[..., 1:] <= types.present[..., :-1]).all()  # presence is a prefix
    assert types.log_marginal.shape == (3,) and torch.isfinite(types.log_marginal).all()
    best = family.infer_types(images, TypeTokenSettings(**{**OFFICIAL_CODE, "type_samples": 4}))
    joint = family.infer_types(images, TypeTokenSettings(type_samples=4, type_weights="joint"))
    assert best.log_weights.mean() > joint.log_weights.mean()  # best of 20 joints vs single
    queries = _images(2, seed=5)
    start = family.fit(queries, types, TypeTokenSettings(token_steps=0))
    fitted = family.fit(queries, types, TypeTokenSettings(token_steps=5, token_lr=0.1))
    assert fitted.scores.shape == (2, 3, 4) and fitted.tokens.shape == (2, 3, 4, 1, SIZE, SIZE)
    assert (fitted.scores >= start.scores - 1e-6).all() and (fitted.scores > start.scores).any()


def test_permuting_the_supports_permutes_the_scores() -> None:
    model, guide, _ = _air()
    family = AirTokens(model, guide)
    types = _hand_types(5, seed=2)
    queries = _images(3, seed=6)
    settings = TypeTokenSettings(token_steps=3, token_chunk=7)  # chunks cut across supports
    perm = torch.tensor([3, 0, 4, 1, 2])
    scores = family.score(queries, types, settings)
    permuted = family.score(queries, types.take(perm), settings)
    assert scores.shape == (3, 5) and torch.isfinite(scores).all()
    torch.testing.assert_close(permuted, scores[:, perm], rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("two_way", [False, True])
def test_cli_type_token_on_an_air_checkpoint(tmp_path: Path, two_way: bool, capsys) -> None:
    ckpt = save_untrained(tmp_path / "air.pt", "difference-air", *_air("difference-air"))
    runs, out = _fake_archive(tmp_path / "runs.zip"), tmp_path / "out"
    argv = ["one-shot", str(ckpt), "--runs", str(runs), "--out", str(out)]
    argv += ["--data-dir", str(tmp_path), "--type-samples", "2", "--token-steps", "2"]
    argv += ["--what-noise", "0.2", "--threads", "1", "--no-progress"]
    assert main(argv + (["--two-way"] if two_way else [])) == 0
    stem = "one_shot_type_token_2way" if two_way else "one_shot_type_token"
    result = json.loads((out / f"{stem}.json").read_text())
    assert 0.0 <= result["mean_accuracy"] <= 1.0 and len(result["per_run"]) == 2
    assert result["scoring"] == ("two-way" if two_way else "one-way")
    settings = result["settings"]
    assert settings["model"] == "difference-air" and settings["family"] == "air"
    assert settings["image_size"] == SIZE and settings["render_points"] is None
    assert settings["type_token"]["what_noise"] == 0.2
    assert (
        settings["type_token"]["type_samples"] == 2 and settings["type_token"]["two_way"] is two_way
    )
    assert math.isfinite(result["seconds_per_run"])
    assert (out / f"{stem}.png").is_file()
    assert "one-shot type-token" in capsys.readouterr().out
