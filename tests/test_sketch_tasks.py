"""Tests for sketch-rnn's creative tasks (tasks.sketch_rnn) with a tiny randomly initialised
sketch-rnn: slerp, reconstruction at several τ, interpolation, analogies, completion,
unconditional samples, pictures, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from generative.sketch_rnn import SketchRNN
from generative.sketch_rnn_config import SketchRNNConfig
from guides.sketch_rnn import SketchRNNGuide
from inference.checkpoint import read_checkpoint, save_checkpoint
from tasks.cli import main
from tasks.data.stroke_formats import pad_batch, to_stroke3
from tasks.data.strokes import StrokeData
from tasks.sketch_rnn import FAMILY
from tasks.sketch_rnn.commands import CompleteOptions
from tasks.sketch_rnn.completion import (
    complete,
    incomplete_sketch,
    prefix_posterior,
    unconditional_samples,
)
from tasks.sketch_rnn.latent import analogy, interpolate, interpolate_grid, reconstruct, slerp
from tasks.sketch_rnn.pictures import write_sketch_pictures
from tasks.sketch_rnn.sampling import encode
from tasks.sketch_rnn.svg import check_stroke3
from tests.tiny import tiny_sketch_rnn

N_MAX = 16
SCALE = 7.5


def _config(conditional: bool = True) -> SketchRNNConfig:
    return tiny_sketch_rnn(conditional=conditional, max_length=N_MAX, scale_factor=SCALE)


@pytest.fixture(scope="module")
def pair() -> tuple[SketchRNN, SketchRNNGuide]:
    torch.manual_seed(0)
    model = SketchRNN(_config())
    return model, SketchRNNGuide(model)


@pytest.fixture(scope="module")
def decoder_only() -> SketchRNN:
    torch.manual_seed(1)
    return SketchRNN(_config(conditional=False))


def _sketches(num: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Random stroke-3 sketches (model units) of 4 … N_max points with 2+ strokes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        n = int(rng.integers(4, N_MAX + 1))
        seq = np.zeros((n, 3), dtype=np.float32)
        seq[:, :2] = rng.normal(size=(n, 2))
        seq[n // 2 - 1, 2] = 1
        seq[-1, 2] = 1
        out.append(seq)
    return out


def _data(num: int = 6) -> StrokeData:
    return StrokeData("synthetic", "test", _sketches(num), SCALE)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_valid(sketches: list[np.ndarray], max_points: int = N_MAX) -> None:
    for s in sketches:
        check_stroke3(s)
        assert s.dtype == np.float32 and len(s) <= max_points


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.allclose(x, y, atol=1e-4) for x, y in zip(a, b, strict=True)
    )


# ----------------------------------------------------------------------------- slerp


def test_slerp_endpoints_midpoint_and_shapes() -> None:
    torch.manual_seed(0)
    z0, z1 = torch.randn(5), torch.randn(5)
    assert torch.equal(slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(slerp(z0, z1, 1.0), z1)
    e0, e1 = torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(slerp(e0, e1, 0.5), (e0 + e1) / math.sqrt(2))
    t = torch.linspace(0, 1, 7)
    assert slerp(z0, z1, t).shape == (7, 5)
    rows = slerp(torch.randn(3, 5), torch.randn(3, 5), t.unsqueeze(-1))
    assert rows.shape == (7, 3, 5)


def test_slerp_preserves_unit_norm_and_equal_norms() -> None:
    torch.manual_seed(1)
    z = torch.randn(2, 100, 16, dtype=torch.float64)
    z0, z1 = z / z.norm(dim=-1, keepdim=True)
    t = torch.rand(100, dtype=torch.float64)
    torch.testing.assert_close(slerp(z0, z1, t).norm(dim=-1), torch.ones(100, dtype=torch.float64))
    torch.testing.assert_close(
        slerp(3 * z0, 3 * z1, t).norm(dim=-1), torch.full((100,), 3.0, dtype=torch.float64)
    )
    lin = (1 - t[:, None]) * z0 + t[:, None] * z1  # linear interpolation shrinks the norm
    assert bool((lin.norm(dim=-1) < 1 - 1e-9).all())


def test_slerp_falls_back_to_linear_for_parallel_and_zero_vectors() -> None:
    z0 = torch.tensor([1.0, 2.0, -1.0])
    for z1 in (2 * z0, -z0, torch.zeros(3)):
        out = slerp(z0, z1, 0.25)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, 0.75 * z0 + 0.25 * z1)


# ----------------------------------------------------------------------------- reconstruct


def test_reconstruct_matches_the_model_at_each_temperature(pair) -> None:
    model, guide = pair
    sketches = _sketches(3)
    x5, lengths = pad_batch(sketches, N_MAX)
    recs = reconstruct(model, guide, x5, lengths, [0.0, 0.5, 1.0], generator=_gen())
    assert list(recs) == [0.0, 0.5, 1.0]
    for out in recs.values():
        assert len(out) == 3
        _assert_valid(out)
    # z = μ of the encoder, decoded deterministically at τ = 0, offsets times scale_factor
    mu, _ = guide.encode(x5, lengths)
    rows = model.sample(mu, N_MAX, temperature=0.0)
    for r, rec in zip(rows, recs[0.0], strict=True):
        expected = to_stroke3(r, start_token=False)
        expected[:, :2] *= SCALE
        np.testing.assert_allclose(rec, expected, rtol=1e-6)


def test_reconstruct_tau0_is_deterministic_and_tau1_is_random(pair) -> None:
    model, guide = pair
    x5, lengths = pad_batch(_sketches(4), N_MAX)
    a = reconstruct(model, guide, x5, lengths, [0.0, 1.0], generator=_gen(0))
    b = reconstruct(model, guide, x5, lengths, [0.0, 1.0], generator=_gen(1))
    c = reconstruct(model, guide, x5, lengths, [0.0, 1.0], generator=_gen(0))
    assert _same(a[0.0], b[0.0])
    assert not _same(a[1.0], b[1.0])
    assert _same(a[1.0], c[1.0])  # reproducible given the generator
    sampled = reconstruct(model, guide, x5, lengths, [0.0], generator=_gen(0), use_mean=False)
    assert not _same(a[0.0], sampled[0.0])  # z = μ + σ ε differs from μ
    assert model.training  # the previous mode is restored


def test_reconstruct_errors(pair, decoder_only) -> None:
    model, guide = pair
    x5, lengths = pad_batch(_sketches(2), N_MAX)
    with pytest.raises(ValueError, match="temperature >= 0"):
        reconstruct(model, guide, x5, lengths, [-1.0])
    with pytest.raises(ValueError, match="decoder-only"):
        reconstruct(decoder_only, None, x5, lengths, [0.5])


# ----------------------------------------------------------------------------- latent space


def test_interpolation_endpoints_are_the_reconstructions(pair) -> None:
    model, guide = pair
    a, b = _sketches(2, seed=3)
    path = interpolate(model, guide, a, b, 5, temperature=0.0)
    assert len(path) == 5
    _assert_valid(path)
    x5, lengths = pad_batch([a, b], N_MAX)
    recs = reconstruct(model, guide, x5, lengths, [0.0])[0.0]
    assert _same([path[0], path[-1]], recs)
    grid = interpolate_grid(model, guide, _sketches(4, seed=4), 3, 4, temperature=0.0)
    assert [len(row) for row in grid] == [4, 4, 4]
    corners = _sketches(4, seed=4)
    recs = reconstruct(model, guide, *pad_batch(corners, N_MAX), [0.0])[0.0]
    assert _same([grid[0][0], grid[0][-1], grid[-1][0], grid[-1][-1]], recs)
    with pytest.raises(ValueError, match="num_steps must be >= 2"):
        interpolate(model, guide, a, b, 1)


def test_analogy_is_c_plus_b_minus_a(pair) -> None:
    model, guide = pair
    a, b, c = _sketches(3, seed=5)
    recs = reconstruct(model, guide, *pad_batch([b, c], N_MAX), [0.0])[0.0]
    # a == b: z_c + 0 → reconstruction of c;  a == c: z_b → reconstruction of b
    assert _same(analogy(model, guide, a, a, c, temperature=0.0), [recs[1]])
    assert _same(analogy(model, guide, c, b, c, temperature=0.0), [recs[0]])
    out = analogy(model, guide, a, b, c, num_samples=3, temperature=0.5, generator=_gen())
    assert len(out) == 3
    _assert_valid(out)


# ----------------------------------------------------------------------------- completion


def test_incomplete_sketch_cuts_at_stroke_ends() -> None:
    seq = np.zeros((10, 3), dtype=np.float32)
    seq[[2, 6, 9], 2] = 1
    assert len(incomplete_sketch(seq)) == 3  # half = 5 points → back to the end of stroke 1
    assert len(incomplete_sketch(seq, 8)) == 7
    assert len(incomplete_sketch(seq, 2)) == 2  # no stroke ends within 2 points: mid-stroke
    assert len(incomplete_sketch(seq, 100)) == 7  # at most N − 1 points, then whole strokes
    assert len(incomplete_sketch(seq, 5, whole_strokes=False)) == 5
    assert len(incomplete_sketch(seq[:1])) == 1
    with pytest.raises(ValueError, match="num_points must be >= 1"):
        incomplete_sketch(seq, 0)


@pytest.mark.parametrize("z_mode", ["posterior", "encoder", "prior"])
def test_completions_start_with_the_prefix(pair, z_mode) -> None:
    model, guide = pair
    prefix = incomplete_sketch(_sketches(1, seed=6)[0])
    out = complete(model, guide, prefix, 4, 0.8, z_mode=z_mode, generator=_gen())
    assert len(out) == 4
    _assert_valid(out)
    expected = prefix.copy()
    expected[:, :2] *= SCALE
    for s in out:
        assert len(s) >= len(prefix)
        np.testing.assert_allclose(s[: len(prefix)], expected, rtol=1e-6)


def test_completion_is_deterministic_at_tau0_with_the_encoder_mean(pair, decoder_only) -> None:
    model, guide = pair
    prefix = _sketches(1, seed=7)[0][:5]
    out = complete(model, guide, prefix, 3, 0.0, z_mode="encoder", generator=_gen())
    assert _same(out[:1] * 3, out)
    dec = complete(decoder_only, None, prefix, 3, 0.0)
    assert _same(dec[:1] * 3, dec)
    random = complete(decoder_only, None, prefix, 3, 1.0, generator=_gen())
    _assert_valid(random)
    with pytest.raises(ValueError, match="shorter than N_max"):
        complete(decoder_only, None, np.zeros((N_MAX, 3), np.float32), 1)
    with pytest.raises(ValueError, match="z_mode"):
        complete(model, guide, prefix, 1, z_mode="bogus")


def test_prefix_posterior_resamples_particles(pair) -> None:
    model, guide = pair
    prefix = _sketches(1, seed=8)[0][:6]
    z, ess = prefix_posterior(model, guide, prefix, 5, num_particles=32, generator=_gen())
    assert z.shape == (5, model.config.z_dim)
    assert 1.0 <= ess <= 32.0 + 1e-6
    one, ess1 = prefix_posterior(model, guide, prefix, 3, num_particles=1, generator=_gen())
    assert ess1 == pytest.approx(1.0)
    assert torch.equal(one[0], one[1]) and torch.equal(one[1], one[2])
    mu, _ = encode(model, guide, [prefix])
    assert (z - mu).abs().max() < 10  # draws from around the encoder's q(z | prefix)


# ----------------------------------------------------------------------------- samples


def test_unconditional_samples(pair, decoder_only) -> None:
    model, _ = pair
    for net in (model, decoder_only):
        out = unconditional_samples(net, 5, 0.7, generator=_gen(2))
        assert len(out) == 5
        _assert_valid(out)
        again = unconditional_samples(net, 5, 0.7, generator=_gen(2))
        assert _same(out, again)
    with pytest.raises(ValueError, match="n must be >= 1"):
        unconditional_samples(model, 0)


# ----------------------------------------------------------------------------- pictures


def _nonblank_png(path: Path) -> bool:
    img = imread(str(path))[..., :3]
    return img.max(axis=-1).min() < 0.5  # some dark pixel (labels or lines)


def test_write_sketch_pictures(tmp_path: Path, pair, decoder_only) -> None:
    model, guide = pair
    data = _data()
    paths = write_sketch_pictures(
        model, guide, tmp_path / "cond", data, temperatures=(0.1, 1.0), seed=0, grid_size=3
    )
    names = sorted(p.name for p in paths)
    stems = ["completions", "interpolation", "interpolation_grid", "interpolation_grid_inputs"]
    stems += ["reconstructions", "samples"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("png", "svg"))
    assert all(p.exists() for p in paths)
    assert all(_nonblank_png(p) for p in paths if p.suffix == ".png")
    paths = write_sketch_pictures(decoder_only, None, tmp_path / "dec", data, seed=0)
    assert sorted(p.name for p in paths) == [
        "completions.png",
        "completions.svg",
        "samples.png",
        "samples.svg",
    ]
    wrong = StrokeData("synthetic", "test", data.sequences, SCALE * 2)
    with pytest.raises(ValueError, match="scale_factor"):
        write_sketch_pictures(model, guide, tmp_path / "x", wrong)


# ----------------------------------------------------------------------------- CLI


def _save_pair(tmp_path: Path, pair, decoder_only) -> None:
    model, guide = pair
    for name, net, g in [("cond.pt", model, guide), ("dec.pt", decoder_only, None)]:
        payload = {
            "model": "sketch-rnn" if net.config.conditional else "sketch-rnn-decoder",
            "model_config": net.config.to_dict(),
            "model_state": net.state_dict(),
            "guide_state": {} if g is None else g.state_dict(),
            "step": 0,
            "data": {"dataset": "synthetic", "classes": None},
        }
        save_checkpoint(payload, tmp_path / name)


def _fake_strokes(monkeypatch, data: StrokeData) -> None:
    def fake_strokes(name, split, **kwargs):
        assert name == "synthetic" and split == "test"
        assert kwargs["max_length"] == N_MAX and kwargs["scale_factor"] == SCALE
        return data

    monkeypatch.setattr("tasks.sketch_rnn.data.load_strokes", fake_strokes)


def test_cli_handlers(tmp_path: Path, monkeypatch, pair, decoder_only) -> None:
    data = _data()
    _save_pair(tmp_path, pair, decoder_only)
    _fake_strokes(monkeypatch, data)
    assert set(FAMILY.commands) == {"evaluate", "reconstruct", "interpolate", "complete", "sample"}
    for command in ("reconstruct", "interpolate"):
        assert FAMILY.command(command, "sketch-rnn-decoder") is None
    runs = [
        ("reconstruct", "cond.pt", ["--temperature", "0", "1", "--num-examples", "2"]),
        (
            "interpolate",
            "cond.pt",
            [
                "--interp-steps",
                "3",
                "--interp-grid-size",
                "2",
                "--analogy-indices",
                "0",
                "1",
                "2",
                "--num-samples",
                "2",
            ],
        ),
        (
            "complete",
            "cond.pt",
            [
                "--sketch-indices",
                "1",
                "3",
                "--prefix-points",
                "4",
                "--num-samples",
                "2",
                "--completion-z",
                "encoder",
            ],
        ),
        ("complete", "dec.pt", ["--num-examples", "1"]),
        ("sample", "dec.pt", ["--num-samples", "3", "--temperature", "0.5"]),
    ]
    for command, ckpt, extra in runs:
        out = tmp_path / command / ckpt
        assert main([command, str(tmp_path / ckpt), "--out", str(out), *extra]) == 0, command
        assert sorted(p.suffix for p in out.iterdir()) in (
            [".png", ".svg"],
            [".png", ".png", ".png", ".png", ".svg", ".svg", ".svg", ".svg"],
            [".png"] * 5 + [".svg"] * 5,
        ), (command, sorted(out.iterdir()))
    assert (tmp_path / "interpolate" / "cond.pt" / "analogy_tau0.1.png").exists()
    checkpoint = read_checkpoint(tmp_path / "cond.pt")
    spec = FAMILY.model("sketch-rnn")
    bad = CompleteOptions(sketch_indices=[99], out=str(tmp_path))
    with pytest.raises(ValueError, match="--sketch-indices: 99 is out of range"):
        FAMILY.command("complete", "sketch-rnn").run(spec, checkpoint, bad)


def test_cli_refuses_what_does_not_apply(tmp_path: Path, monkeypatch, pair, decoder_only, capsys):
    _save_pair(tmp_path, pair, decoder_only)
    _fake_strokes(monkeypatch, _data())
    cond, dec = str(tmp_path / "cond.pt"), str(tmp_path / "dec.pt")
    refused = [
        (["reconstruct", dec], "`reconstruct` is not available for 'sketch-rnn-decoder'"),
        (["interpolate", dec], "`interpolate` is not available for 'sketch-rnn-decoder'"),
        (["sample", dec, "--num-sequences", "2"], "--num-sequences does not apply to `sample`"),
        (["sample", cond, "--no-nearest"], "--nearest does not apply to `sample`"),
        (["evaluate", cond, "--chunk-size", "4"], "--chunk-size does not apply to `evaluate`"),
        (["complete", dec, "--partial-region", "top"], "--partial-region does not apply"),
        (["complete", cond, "--sketch-indices", "99"], "--sketch-indices: 99 is out of range"),
    ]
    for argv, message in refused:
        assert main([*argv, "--out", str(tmp_path / "o")]) == 1, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["interpolate", "--interp-steps", "1"],
        ["interpolate", "--interp-grid-size", "1"],
        ["interpolate", "--analogy-indices", "0", "1"],
        ["interpolate", "--analogy-indices", "0", "1", "-2"],
        ["reconstruct", "--temperature", "-0.5"],
        ["reconstruct", "--temperature", "nan"],
        ["reconstruct", "--num-examples", "0"],
        ["complete", "--prefix-points", "0"],
        ["complete", "--completion-z", "mean"],
        ["sample", "--num-samples", "0"],
        ["reconstruct", "--split", "dev"],
    ],
)
def test_cli_rejects_bad_values_at_parse_time(argv, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:  # before the checkpoint is even read
        main([argv[0], str(tmp_path / "missing.pt"), *argv[1:]])
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_options_check_values_in_python() -> None:
    with pytest.raises(ValueError, match="--num-samples"):
        CompleteOptions(num_samples=0)
    with pytest.raises(ValueError, match="--completion-z"):
        CompleteOptions(completion_z="mean")
