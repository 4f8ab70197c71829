"""Type-token scoring of one-shot classification (tasks/one_shot/type_token.py, DooD Eqs. 17–20)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from generative.dood_config import DooDConfig
from inference.checkpoint import save_checkpoint
from tasks.cli import main
from tasks.data.glyphs import generate_glyphs
from tasks.dood import FAMILY
from tasks.one_shot.baselines import ink_points, modified_hausdorff
from tasks.one_shot.tokens import (
    OFFICIAL_CODE,
    TypeTokenSettings,
    aggregate_scores,
    render_tokens,
    token_affine,
    token_model,
    two_way_scores,
)
from tasks.one_shot.type_token import CharacterTypes, TypeTokenScorer, infer_types, score_types
from tests.test_one_shot import _fake_archive, _run_of
from tests.tiny import tiny_dood, tiny_dood_pair

SIZE = 16
DOOD_TINY = tiny_dood(SIZE, hidden=16, render_points=20)


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _laplace(scale: float):
    return lambda canvas: dist.Laplace(canvas, scale).to_event(3)


def _glyph_types(num: int, seed: int) -> CharacterTypes:
    """Ground-truth glyph strokes as types: a "perfect guide", K = 1, π = 1."""
    g = generate_glyphs(num, seed=seed)
    return CharacterTypes(
        g["control_points"][:, None],
        g["stroke_mask"][:, None],
        g["sigma"][:, None],
        g["omega0"][:, None],
        g["omega1"][:, None],
        torch.zeros(num, 1),
    )


# ----------------------------------------------------------------------------- aggregation
def test_aggregation_is_log_of_the_weighted_sum() -> None:
    log_weights = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]])
    fitted = torch.tensor(
        [[[-1.0, -2.0], [0.5, -3.0]], [[-4.0, 1.0], [2.0, 2.0]]], dtype=torch.float64
    )  # (Q=2, S=2, K=2)
    pis = [[0.25, 0.75], [0.5, 0.5]]
    direct = torch.tensor(
        [
            [
                math.log(
                    sum(p * math.exp(v) for p, v in zip(pis[s], fitted[q, s].tolist(), strict=True))
                )
                for s in (0, 1)
            ]
            for q in (0, 1)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(aggregate_scores(log_weights, fitted), direct)
    # stable far from 0, and the weights only count relative to each other
    torch.testing.assert_close(aggregate_scores(log_weights + 7.0, fitted - 1e4), direct - 1e4)


def test_two_way_adds_the_reverse_direction_minus_the_support_evidence() -> None:
    forward = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # (Q=2, S=3)
    backward = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])  # (S=3, Q=2)
    evidence = torch.tensor([100.0, 200.0, 300.0])
    expected = torch.tensor([[-89.0, -168.0, -247.0], [-76.0, -155.0, -234.0]])
    torch.testing.assert_close(two_way_scores(forward, backward, evidence), expected)


# ----------------------------------------------------------------------------- token model
def test_affine_is_identity_at_zero_and_the_official_seven_parameter_matrix() -> None:
    settings = TypeTokenSettings()
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(token_affine(torch.zeros(7), settings), identity)
    raw = torch.tensor([0.3, -0.5, 1.0, -0.2, 0.7, -1.1, 0.4], dtype=torch.float64)
    bound = lambda u, lo, hi: lo + (hi - lo) * torch.sigmoid(u)  # noqa: E731
    tx, ty = bound(raw[:2], -0.2, 0.2)
    sx, sy = bound(raw[2:4], 0.6, 1.4)
    theta = bound(raw[4], -0.25 * math.pi, 0.25 * math.pi)
    hx, hy = bound(raw[5:], -0.3 * math.pi, 0.3 * math.pi)
    for degrees in (False, True):
        angle = torch.deg2rad(theta) if degrees else theta
        c, s = torch.cos(angle), torch.sin(angle)
        # official util.get_affine_matrix_from_param, "7", written out
        expected = torch.stack(
            [
                torch.stack(
                    [(c * (1 + hx * hy) + s * hx) * sx, (-s * (1 + hx * hy) + hx * c) * sy, tx]
                ),
                torch.stack([(c * hy + s) * sx, (-s * hy + c) * sy, ty]),
            ]
        )
        found = token_affine(raw, TypeTokenSettings(rotation_in_degrees=degrees))
        torch.testing.assert_close(found, expected)


def test_token_model_sites_and_motor_noise_reductions() -> None:
    types = _glyph_types(3, seed=5).elements(torch.arange(3))
    counts = types.present.sum(-1).double()
    noisy = types.points + 0.01 * torch.randn(
        types.points.shape, generator=torch.Generator().manual_seed(0)
    )
    raw = torch.zeros(3, 7)
    images = torch.rand(3, 1, SIZE, SIZE)

    def sites(**fields) -> dict:
        settings = TypeTokenSettings(**fields)
        conditioned = poutine.condition(token_model, data={"motor_noise": noisy, "affine": raw})
        trace = poutine.trace(conditioned).get_trace(
            types, _laplace(0.2), settings, (SIZE, SIZE), 20, images
        )
        trace.compute_log_prob()
        return {n: s for n, s in trace.nodes.items() if s["type"] == "sample"}

    summed, mean, flat = sites(motor_reduction="sum"), sites(), sites(affine_prior="flat")
    assert {"motor_noise", "affine", "x", "token_points"} <= set(summed)
    assert summed["x"]["is_observed"] and summed["motor_noise"]["value"].shape == types.points.shape
    mask = types.present[..., None, None].double()
    by_hand = (dist.Normal(types.points, 2e-3).log_prob(noisy).double() * mask).sum((1, 2, 3))
    torch.testing.assert_close(summed["motor_noise"]["log_prob"].double(), by_hand)
    torch.testing.assert_close(mean["motor_noise"]["log_prob"].double(), by_hand / counts)
    torch.testing.assert_close(
        summed["affine"]["log_prob"], torch.full((3,), -3.5 * math.log(2 * math.pi))
    )
    assert (flat["affine"]["log_prob"] == 0).all()
    # the identity affine (u = 0) renders the noisy points themselves
    torch.testing.assert_close(summed["token_points"]["value"], noisy)
    canvas = render_tokens(noisy, types, (SIZE, SIZE), 20)
    torch.testing.assert_close(summed["x"]["fn"].base_dist.loc, canvas)


# ----------------------------------------------------------------------------- synthetic task
def test_scoring_recovers_the_types_of_noisy_affine_tokens() -> None:
    """10 glyph types, 10 tokens of each drawn by the token model (motor noise, an affine with
    u ~ N(0, 1)) and rendered at 28×28; the true strokes as a perfect guide (K = 1); a Laplace
    likelihood of scale 0.1. Fitting the tokens must beat chance, the unfitted types and MHD."""
    num, per_type, size, points = 10, 10, 28, 30
    types = _glyph_types(num, seed=0)
    likelihood = _laplace(0.1)
    labels = torch.arange(num).repeat_interleave(per_type)
    truth = types.elements(labels)
    torch.manual_seed(0)
    affine = torch.randn(len(labels), 7)
    with torch.no_grad():
        conditioned = poutine.condition(token_model, data={"affine": affine})
        trace = poutine.trace(conditioned).get_trace(
            truth, likelihood, TypeTokenSettings(), (size, size), points
        )
    queries = trace.nodes["_RETURN"]["value"]
    noise = trace.nodes["motor_noise"]["value"] - truth.points
    assert noise[truth.present].std() == pytest.approx(2e-3, rel=0.2)
    supports = render_tokens(
        types.points[:, 0], types.elements(torch.arange(num)), (size, size), points
    )

    settings = TypeTokenSettings(token_steps=20, token_lr=0.1)
    scores = score_types(queries, types, likelihood, settings, points)
    assert scores.shape == (num * per_type, num) and torch.isfinite(scores).all()
    accuracy = (scores.argmax(1) == labels).double().mean().item()
    unfitted = score_types(queries, types, likelihood, TypeTokenSettings(token_steps=0), points)
    unfitted_accuracy = (unfitted.argmax(1) == labels).double().mean().item()
    mhd = -modified_hausdorff(ink_points(queries > 0.5), ink_points(supports > 0.5))
    mhd_accuracy = (mhd.argmax(1) == labels).double().mean().item()
    assert (scores >= unfitted - 1e-6).all()  # the best seen includes the start
    assert accuracy >= 0.6 > 5 / num  # observed 0.85
    assert accuracy >= unfitted_accuracy + 0.2  # observed 0.48
    assert accuracy >= mhd_accuracy + 0.15  # observed 0.56


def test_permuting_the_supports_permutes_the_scores() -> None:
    base = _glyph_types(5, seed=2)
    gen = torch.Generator().manual_seed(3)
    jitter = 0.05 * torch.randn(5, 1, *base.points.shape[2:], generator=gen)
    types = CharacterTypes(
        torch.cat([base.points, base.points + jitter], 1),
        base.present.repeat(1, 2, 1),
        base.sigma.repeat(1, 2, 1),
        base.omega0.repeat(1, 2, 1),
        base.omega1.repeat(1, 2),
        torch.randn(5, 2, generator=gen),
    )
    queries = render_tokens(
        base.points[:3, 0] + 0.02, types.elements(torch.arange(3) * 2), (SIZE, SIZE), 20
    )
    settings = TypeTokenSettings(token_steps=3, token_chunk=7)  # chunks cut across supports
    perm = torch.tensor([3, 0, 4, 1, 2])
    scores = score_types(queries, types, _laplace(0.2), settings, 20)
    permuted = score_types(queries, types.take(perm), _laplace(0.2), settings, 20)
    torch.testing.assert_close(permuted, scores[:, perm])


# ----------------------------------------------------------------------------- DooD
def _dood(seed: int = 0):
    return tiny_dood_pair(SIZE, seed)


def test_types_from_a_dood_guide() -> None:
    model, guide, _ = _dood()
    images = torch.rand(3, 1, SIZE, SIZE)
    pyro.set_rng_seed(1)
    sampled = infer_types(model, guide, images, TypeTokenSettings(type_samples=4, type_rows=5))
    assert sampled.points.shape == (3, 4, 3, 4, 2) and sampled.present.dtype == torch.bool
    assert torch.isfinite(sampled.points).all() and torch.isfinite(sampled.log_weights).all()
    assert (sampled.present[..., 1:] <= sampled.present[..., :-1]).all()  # presence is a prefix
    assert (sampled.sigma > 0).all() and (sampled.omega1 == model.omega1()).all()
    assert sampled.log_marginal.shape == (3,) and torch.isfinite(sampled.log_marginal).all()
    official = TypeTokenSettings(**{**OFFICIAL_CODE, "type_samples": 4})
    best = infer_types(model, guide, images, official)
    joint = infer_types(
        model, guide, images, TypeTokenSettings(type_samples=4, type_weights="joint")
    )
    assert best.log_weights.mean() > joint.log_weights.mean()  # best of 20 joints vs single draws
    before = [p.detach().clone() for p in model.parameters()]
    scorer = TypeTokenScorer(model, guide, TypeTokenSettings(type_samples=2, token_steps=2))
    run = _run_of(images > 0.5, torch.rand(2, 1, SIZE, SIZE) > 0.5, [0, 2])
    scores = scorer(run)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    assert scorer.tokens["run99"].shape == (2, 1, SIZE, SIZE)
    assert {"types_seconds", "tokens_seconds"} <= set(scorer.timings["run99"])
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ----------------------------------------------------------------------------- command line
def save_untrained(path: Path, name: str, model, guide, config: dict) -> Path:
    """A step-0 checkpoint of registry model ``name`` (as if trained on glyphs)."""
    return save_checkpoint(
        {
            "model": name,
            "model_config": config,
            "model_state": model.state_dict(),
            "guide_state": guide.state_dict(),
            "step": 0,
            "data": {"dataset": "glyphs"},
        },
        path,
    )


def _dood_checkpoint(path: Path) -> Path:
    return save_untrained(path, "dood", *_dood())


@pytest.mark.parametrize("two_way", [False, True])
def test_cli_type_token_writes_the_documented_json(tmp_path: Path, two_way: bool, capsys) -> None:
    ckpt = _dood_checkpoint(tmp_path / "dood.pt")
    runs, out = _fake_archive(tmp_path / "runs.zip"), tmp_path / "out"
    argv = [
        "one-shot",
        str(ckpt),
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--data-dir",
        str(tmp_path),
    ]
    argv += ["--type-samples", "2", "--token-steps", "2", "--threads", "1", "--no-progress"]
    assert main(argv + (["--two-way"] if two_way else [])) == 0
    stem = "one_shot_type_token_2way" if two_way else "one_shot_type_token"
    result = json.loads((out / f"{stem}.json").read_text())
    keys = {"mean_accuracy", "stderr", "per_run", "settings", "seconds", "seconds_per_run"}
    assert keys <= set(result) and 0.0 <= result["mean_accuracy"] <= 1.0
    assert result["scoring"] == ("two-way" if two_way else "one-way")
    settings = result["settings"]
    assert (
        settings["type_token"]["type_samples"] == 2 and settings["type_token"]["token_steps"] == 2
    )
    assert settings["type_token"]["two_way"] is two_way and settings["image_size"] == SIZE
    assert settings["checkpoint"] == str(ckpt) and settings["model"] == "dood"
    assert len(result["per_run"]) == 2
    assert {"accuracy", "seconds", "types_seconds", "tokens_seconds"} <= set(result["per_run"][0])
    assert (out / f"{stem}.png").is_file()
    assert "one-shot type-token" in capsys.readouterr().out


def test_cli_type_token_on_a_subset_of_the_official_runs(
    real_data_dir: Path, tmp_path: Path
) -> None:
    ckpt = _dood_checkpoint(tmp_path / "dood.pt")
    argv = ["one-shot", str(ckpt), "--num-runs", "1", "--type-samples", "2", "--token-steps", "2"]
    argv += ["--out", str(tmp_path), "--threads", "1", "--no-progress", "--no-pictures"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "one_shot_type_token.json").read_text())
    assert result["num_runs"] == 1 and result["num_queries"] == 20
    assert result["per_run"][0]["run"] == "run01" and result["settings"]["num_runs"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give either a DooD or AIR CHECKPOINT"),
        (["CKPT", "--baseline", "mhd"], "not both"),
        (["--baseline", "mhd", "--two-way", "--token-steps", "3"], "--two-way, --token-steps"),
        (["--baseline", "mhd", "--what-noise", "0.5"], "--what-noise"),
        (["DR"], "needs DooD's spline renderer"),
    ],
)
def test_cli_refuses_ambiguous_or_unsuitable_requests(tmp_path, extra, message, capsys) -> None:
    ckpt = _dood_checkpoint(tmp_path / "dood.pt")
    config = DooDConfig(**{**DOOD_TINY, "renderer": "neural"}).to_dict()  # DooD-δR: no points
    model, guide = FAMILY.model("dood").build(config)
    neural = save_untrained(tmp_path / "dood_dR.pt", "dood", model, guide, config)
    names = {"CKPT": str(ckpt), "DR": str(neural)}
    runs = _fake_archive(tmp_path / "runs.zip")
    argv = ["one-shot", *[names.get(a, a) for a in extra], "--runs", str(runs), "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
