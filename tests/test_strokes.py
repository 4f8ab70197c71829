"""Tests of sketch-rnn's stroke data pipeline (tasks/data/strokes.py) and output distribution
(generative/strokes.py, Eqs. 3–9)."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.strokes import (
    END_TOKEN,
    START_TOKEN,
    StrokeParams,
    StrokeSequence,
    apply_temperature,
    mixture_params,
    num_outputs,
    sample_step,
)
from tasks.data import DataError
from tasks.data import strokes as strokes_mod
from tasks.data.batches import StrokeBatches
from tasks.data.glyphs import MAX_STROKES
from tasks.data.paths import FileSpec, file_sha256
from tasks.data.stroke_formats import (
    augment,
    drop_points,
    inputs_and_targets,
    lines_to_stroke3,
    pad_batch,
    rdp,
    simplify_strokes,
    stroke3_to_lines,
    to_stroke3,
    to_stroke5,
    validate_sequence,
)
from tasks.data.strokes import load_strokes, scale_factor_of, training_scale_factor

OMNIGLOT_SPLITS = {"train": 30_000, "valid": 1_000, "test": 1_000}  # shared data README


# ------------------------------------------------------------------------ hand-made params
def hand_params() -> tuple[StrokeParams, dict[str, torch.Tensor]]:
    """M = 2 components, N_max = 4 steps, float64, every step different."""
    f64 = {"dtype": torch.float64}
    raw = {
        "pi": torch.tensor([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], **f64),
        "mu": torch.tensor(
            [
                [[0.0, 0.0], [1.0, -1.0]],
                [[0.5, 0.2], [-0.3, 0.4]],
                [[2.0, 1.0], [0.0, 0.0]],
                [[0.1, 0.1], [0.2, 0.3]],
            ],
            **f64,
        ),
        "sigma": torch.tensor(
            [
                [[1.0, 0.5], [0.3, 2.0]],
                [[0.7, 0.7], [1.5, 0.2]],
                [[0.4, 0.9], [1.1, 1.3]],
                [[1.0, 1.0], [0.5, 0.5]],
            ],
            **f64,
        ),
        "rho": torch.tensor([[0.0, 0.5], [-0.8, 0.2], [0.95, -0.3], [0.1, 0.0]], **f64),
        "q": torch.tensor(
            [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], **f64
        ),
    }
    return StrokeParams.from_probs(raw["pi"], raw["mu"], raw["sigma"], raw["rho"], raw["q"]), raw


def direct_eq9(raw: dict[str, torch.Tensor], x: np.ndarray, n_s: int, pen_to: int = 0) -> float:
    """−N_max · L_R of Eq. 9 by explicit loops over steps and components (plain floats); the
    pen term over the first ``pen_to`` rows (0: all N_max, as Eq. 9)."""
    total = 0.0
    n_max = x.shape[0]
    for i in range(n_s):
        dx, dy = x[i, 0], x[i, 1]
        p = 0.0
        for j in range(raw["pi"].shape[1]):
            mx, my = raw["mu"][i, j].tolist()
            sx, sy = raw["sigma"][i, j].tolist()
            r = raw["rho"][i, j].item()
            z = (
                ((dx - mx) / sx) ** 2
                + ((dy - my) / sy) ** 2
                - 2 * r * (dx - mx) * (dy - my) / (sx * sy)
            )
            dens = math.exp(-z / (2 * (1 - r * r))) / (2 * math.pi * sx * sy * math.sqrt(1 - r * r))
            p += raw["pi"][i, j].item() * dens
        total += math.log(p)
    for i in range(pen_to or n_max):
        for k in range(3):
            total += x[i, 2 + k] * math.log(raw["q"][i, k].item())
    return total


def hand_target() -> np.ndarray:
    """A stroke-5 target (no S_0) with N_s = 2 of N_max = 4: two points, end, padding."""
    return np.array(
        [
            [0.4, -0.2, 1, 0, 0],
            [1.5, 0.7, 0, 1, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1],
        ],
        dtype=np.float64,
    )


# ------------------------------------------------------------------------ distribution (Eq. 9)
def test_log_prob_equals_direct_eq9() -> None:
    params, raw = hand_params()
    x = hand_target()
    d = StrokeSequence(params, torch.tensor(2))
    assert d.batch_shape == () and d.event_shape == (4, 5)
    expected = direct_eq9(raw, x, n_s=2)
    got = d.log_prob(torch.from_numpy(x))
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert d.reconstruction_loss(torch.from_numpy(x)).item() == pytest.approx(-expected / 4)
    # a soft (non-one-hot) pen target is scored by Σ_k p_k log q_k as written in Eq. 9
    x_soft = x.copy()
    x_soft[3, 2:] = [0.2, 0.3, 0.5]
    got_soft = d.log_prob(torch.from_numpy(x_soft)).item()
    assert got_soft == pytest.approx(direct_eq9(raw, x_soft, n_s=2), rel=1e-12)


def test_reference_eval_reading_sums_the_pen_term_over_the_sketch_rows_only() -> None:
    """pen_rows="n_s" is magenta's eval-model L_R: the pen loss of rows after N_s (the end row
    and padding) is dropped, still divided by N_max; it is never above Eq. 9's L_R."""
    params, raw = hand_params()
    x = torch.from_numpy(hand_target())
    d = StrokeSequence(params, torch.tensor(2))
    got = d.reconstruction_loss(x, pen_rows="n_s").item()
    assert got == pytest.approx(-direct_eq9(raw, hand_target(), n_s=2, pen_to=2) / 4, rel=1e-12)
    assert got < d.reconstruction_loss(x).item()
    # only rows after N_s differ: a full-length sketch reads the same both ways
    full = StrokeSequence(params, torch.tensor(4))
    torch.testing.assert_close(
        full.reconstruction_loss(x, pen_rows="n_s"), full.reconstruction_loss(x)
    )
    # the padding's pen states no longer count
    pen = x.clone()
    pen[3, 2:] = torch.tensor([1.0, 0.0, 0.0])
    assert d.reconstruction_loss(pen, pen_rows="n_s") == d.reconstruction_loss(x, pen_rows="n_s")
    with pytest.raises(ValueError, match="pen_rows must be one of"):
        d.reconstruction_loss(x, pen_rows="all")


def test_mixture_params_reads_eq5_layout_and_eqs6_7() -> None:
    m = 2
    y = torch.randn(
        3, num_outputs(m), dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    p = mixture_params(y, m)
    groups = y[:, : 6 * m].reshape(3, m, 6)
    torch.testing.assert_close(p.pi, torch.softmax(groups[..., 0], -1))
    torch.testing.assert_close(p.mu, groups[..., 1:3])
    torch.testing.assert_close(p.sigma, torch.exp(groups[..., 3:5]))
    torch.testing.assert_close(p.rho, torch.tanh(groups[..., 5]))
    torch.testing.assert_close(p.q, torch.softmax(y[:, 6 * m :], -1))
    with pytest.raises(ValueError, match="6M\\+3"):
        mixture_params(y[:, :-1], m)
    # raw outputs and StrokeParams give the same distribution; M is inferred from 6M+3
    x = torch.from_numpy(hand_target()[:3])
    a = StrokeSequence(y, torch.tensor(2)).log_prob(x)
    b = StrokeSequence(p, torch.tensor(2)).log_prob(x)
    torch.testing.assert_close(a, b)


def test_offsets_after_n_s_are_masked_but_pen_states_are_not() -> None:
    params, _ = hand_params()
    d = StrokeSequence(params, torch.tensor(2))
    x = torch.from_numpy(hand_target())
    base = d.log_prob(x)
    moved = x.clone()
    moved[2:, :2] = torch.tensor([[1e6, -3.0], [float("inf"), 2.0]])
    assert torch.equal(d.log_prob(moved), base)
    moved.requires_grad_(True)
    d.log_prob(moved).backward()
    assert torch.isfinite(moved.grad).all() and (moved.grad[2:, :2] == 0).all()
    # an offset before N_s does count
    inside = x.clone()
    inside[1, 0] += 0.5
    assert d.log_prob(inside) != base
    # pen states after N_s count (L_p runs to N_max)
    pen = x.clone()
    pen[3, 2:] = torch.tensor([1.0, 0.0, 0.0])
    assert d.log_prob(pen) != base


def test_log_prob_stable_for_saturated_correlation() -> None:
    y = torch.zeros(2, num_outputs(1))
    y[:, 5] = 30.0  # ρ̂ = 30: tanh(ρ̂) == 1 in float32
    y.requires_grad_(True)
    d = StrokeSequence(y, torch.tensor(2))
    x = torch.tensor([[0.1, 0.1, 1, 0, 0], [0.2, 0.3, 0, 1, 0]])
    lp = d.log_prob(x)
    lp.backward()
    assert torch.isfinite(lp) and torch.isfinite(y.grad).all()


def test_batch_shapes_under_plate_to_event_expand_and_particles() -> None:
    gen = torch.Generator().manual_seed(1)
    b, n, m, p = 3, 5, 2, 4
    y = torch.randn(b, n, num_outputs(m), generator=gen, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 0])
    x, _ = pad_batch([np.ones((5, 3)), np.ones((2, 3)), np.ones((1, 3))], n)
    targets = inputs_and_targets(x.double())[1]
    targets[2] = torch.tensor(END_TOKEN, dtype=torch.float64)  # N_s = 0 for the third
    d = StrokeSequence(y, lengths)
    assert d.batch_shape == (b,) and d.event_shape == (n, 5)
    per_seq = d.log_prob(targets)
    for i in range(b):
        alone = StrokeSequence(y[i], lengths[i]).log_prob(targets[i])
        torch.testing.assert_close(per_seq[i], alone)

    def model() -> None:
        with pyro.plate("data", b):
            pyro.sample("x", StrokeSequence(y, lengths), obs=targets)

    trace = pyro.poutine.trace(model).get_trace()
    trace.compute_log_prob()
    torch.testing.assert_close(trace.nodes["x"]["log_prob"], per_seq)
    torch.testing.assert_close(d.to_event(1).log_prob(targets), per_seq.sum())
    expanded = d.expand((2, b))
    assert expanded.batch_shape == (2, b)
    torch.testing.assert_close(expanded.log_prob(targets), per_seq.expand(2, b))
    # a leading particle dim on the outputs, lengths and targets shared across particles
    y_particles = torch.randn(p, b, n, num_outputs(m), generator=gen, dtype=torch.float64)

    def particle_model() -> None:
        with pyro.plate("particles", p, dim=-2), pyro.plate("data", b, dim=-1):
            pyro.sample("x", StrokeSequence(y_particles, lengths), obs=targets)

    trace = pyro.poutine.trace(particle_model).get_trace()
    trace.compute_log_prob()
    lp = trace.nodes["x"]["log_prob"]
    assert lp.shape == (p, b)
    for k in range(p):
        torch.testing.assert_close(lp[k], StrokeSequence(y_particles[k], lengths).log_prob(targets))
    samples = StrokeSequence(y_particles, lengths).sample((2,))
    assert samples.shape == (2, p, b, n, 5)


def test_lengths_are_checked() -> None:
    y = torch.zeros(2, 3, num_outputs(1))
    with pytest.raises(ValueError, match="N_max = 3"):
        StrokeSequence(y, torch.tensor([1, 4]))
    with pytest.raises(ValueError, match="integers"):
        StrokeSequence(y, torch.tensor([1.0, 2.0]))


# ------------------------------------------------------------------------ temperature, sampling
def test_temperature_follows_eq8() -> None:
    params, raw = hand_params()
    tau = 0.5
    t = apply_temperature(params, tau)
    pi = raw["pi"] ** (1 / tau)  # softmax(Π̂/τ) ∝ Π^{1/τ}
    q = raw["q"] ** (1 / tau)
    torch.testing.assert_close(t.pi, pi / pi.sum(-1, keepdim=True))
    torch.testing.assert_close(t.q, q / q.sum(-1, keepdim=True))
    torch.testing.assert_close(t.sigma.square(), raw["sigma"].square() * tau)  # σ² → σ² τ
    torch.testing.assert_close(t.rho, raw["rho"])
    assert apply_temperature(params, 1.0) is params
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(params, -0.1)


def test_zero_temperature_is_deterministic_argmax_and_mean() -> None:
    params, raw = hand_params()
    d = StrokeSequence(params, torch.tensor(3), temperature=0.0)
    a, b = d.sample(), d.sample((2,))
    assert torch.equal(a, b[0]) and torch.equal(a, b[1])
    j = raw["pi"].argmax(-1)
    expected_offsets = raw["mu"][torch.arange(4), j]
    expected_offsets[3:] = 0  # after N_s = 3
    assert torch.equal(a[:, :2], expected_offsets)
    assert torch.equal(a[:, 2:], torch.nn.functional.one_hot(raw["q"].argmax(-1), 3).double())
    step = apply_temperature(params, 0.0)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(sample_step(step, (5,), gen), sample_step(step, (5,), gen))
    with pytest.raises(ValueError, match="temperature 0"):
        d.log_prob(a)


def test_sample_statistics_match_the_mixture_at_tau_one() -> None:
    torch.manual_seed(0)
    params, raw = hand_params()
    d = StrokeSequence(params, torch.tensor(3))
    s = d.sample((20_000,))
    assert s.shape == (20_000, 4, 5)
    mean = d.mean
    torch.testing.assert_close(mean[:, :2][:3], (raw["pi"][..., None] * raw["mu"]).sum(1)[:3])
    assert torch.allclose(s.mean(0), mean, atol=0.04)
    assert (s[:, 3, :2] == 0).all()  # offsets after N_s are the padding zeros
    assert ((s[..., 2:] == 0) | (s[..., 2:] == 1)).all() and (s[..., 2:].sum(-1) == 1).all()
    # one component: the bivariate normal's correlation and standard deviations
    one = StrokeParams.from_probs(
        torch.ones(1, 1),
        torch.tensor([[[1.0, -2.0]]]),
        torch.tensor([[[0.5, 2.0]]]),
        torch.tensor([[0.8]]),
        torch.ones(1, 3),
    )
    xy = sample_step(one, (20_000,), torch.Generator().manual_seed(1))[:, 0, :2]
    assert torch.allclose(xy.mean(0), torch.tensor([1.0, -2.0]), atol=0.05)
    assert torch.allclose(xy.std(0), torch.tensor([0.5, 2.0]), rtol=0.05)
    assert np.corrcoef(xy.T.numpy())[0, 1] == pytest.approx(0.8, abs=0.02)


# ------------------------------------------------------------------------ stroke-3 <-> stroke-5
@st.composite
def stroke3(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, 30))
    offsets = draw(
        st.lists(st.floats(-500, 500, allow_nan=False, width=32), min_size=2 * n, max_size=2 * n)
    )
    pens = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    return np.column_stack([np.reshape(offsets, (n, 2)), pens]).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(seq=stroke3(), extra=st.integers(0, 5))
def test_stroke5_round_trip_and_layout(seq: np.ndarray, extra: int) -> None:
    n = len(seq)
    max_length = n + extra
    s5 = to_stroke5(seq, max_length)
    assert s5.shape == (max_length + 1, 5) and s5.dtype == np.float32
    assert s5[0].tolist() == list(START_TOKEN)
    assert np.array_equal(s5[1 : n + 1, :2], seq[:, :2])
    assert np.array_equal(s5[1 : n + 1, 3], seq[:, 2]) and (s5[1 : n + 1, 2] == 1 - seq[:, 2]).all()
    assert (s5[1 : n + 1, 4] == 0).all()
    assert (s5[n + 1 :] == np.array(END_TOKEN, dtype=np.float32)).all()
    assert np.array_equal(to_stroke3(s5), seq)
    assert np.array_equal(to_stroke3(s5[1:], start_token=False), seq)


def test_to_stroke5_errors_and_start_token_check() -> None:
    with pytest.raises(ValueError, match="more than max_length=2"):
        to_stroke5(np.zeros((3, 3)), 2)
    with pytest.raises(ValueError, match="start token"):
        to_stroke3(np.zeros((3, 5)))


def test_pad_batch_padding_rows_and_targets() -> None:
    seqs = [np.array([[1, 2, 0], [3, 4, 1]]), np.array([[5, 6, 1]])]
    x5, lengths = pad_batch(seqs, 4)
    assert x5.shape == (2, 5, 5) and x5.dtype == torch.float32
    assert lengths.tolist() == [2, 1] and lengths.dtype == torch.int64
    assert x5[0, 0].tolist() == [0, 0, 1, 0, 0]  # S_0 (sec. 3.2)
    assert x5[0, 3].tolist() == [0, 0, 0, 0, 1]  # S_i for i > N_s
    end = torch.tensor(END_TOKEN)
    assert torch.equal(x5[0, 3:], end.expand(2, 5)) and torch.equal(x5[1, 2:], end.expand(3, 5))
    assert torch.equal(x5[:, 0], torch.tensor(START_TOKEN).expand(2, 5))
    assert torch.equal(x5[1, 1], torch.tensor([5.0, 6, 0, 1, 0]))
    inputs, targets = inputs_and_targets(x5)
    assert inputs.shape == targets.shape == (2, 4, 5)
    assert torch.equal(targets[0, 2], end)  # the end-of-sketch step right after N_s


# ------------------------------------------------------------------------------------ RDP
def rdp_recursive(points: np.ndarray, eps: float) -> np.ndarray:
    """Textbook recursive Douglas–Peucker (independent reference)."""
    if len(points) < 3:
        return points
    a, b = points[0], points[-1]
    chord = b - a
    norm = np.hypot(*chord)
    rel = points[1:-1] - a
    if norm > 0:
        d = np.abs(chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / norm
    else:
        d = np.hypot(rel[:, 0], rel[:, 1])
    k = int(np.argmax(d)) + 1
    if d[k - 1] > eps:
        left = rdp_recursive(points[: k + 1], eps)
        return np.concatenate([left[:-1], rdp_recursive(points[k:], eps)])
    return points[[0, -1]]


def test_rdp_on_known_polylines() -> None:
    line = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=float)
    assert np.array_equal(rdp(line, 0.1), [[0, 0], [3, 3]])  # collinear points removed
    corner = np.array([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2]], dtype=float)
    assert np.array_equal(rdp(corner, 0.5), [[0, 0], [2, 0], [2, 2]])  # the corner is kept
    assert np.array_equal(rdp(corner, 0.0), corner)  # ε = 0 keeps everything
    assert np.array_equal(rdp(line, 0.0), line)
    bump = np.array([[0, 0], [1, 1.5], [2, 0]], dtype=float)
    assert len(rdp(bump, 1.0)) == 3 and len(rdp(bump, 2.0)) == 2  # threshold on the distance
    loop = np.array([[0, 0], [2, 0], [2, 2], [0, 0]], dtype=float)  # closed: zero-length chord
    assert np.array_equal(rdp(loop, 0.5), loop)
    rng = np.random.default_rng(0)
    for _ in range(30):
        pts = np.cumsum(rng.normal(size=(int(rng.integers(2, 40)), 2)), 0)
        eps = float(rng.uniform(0.1, 3))
        assert np.array_equal(rdp(pts, eps), rdp_recursive(pts, eps))


def test_simplify_strokes_per_stroke() -> None:
    # stroke 1: a straight line of 4 points; stroke 2: an L of 3 points
    lines = [np.array([[0, 0], [1, 0], [2, 0], [3, 0]]), np.array([[5, 5], [5, 7], [8, 7]])]
    seq = lines_to_stroke3(lines)
    assert seq[0].tolist() == [0, 0, 0] and seq[:, 2].tolist() == [0, 0, 0, 1, 0, 0, 1]
    back = stroke3_to_lines(seq)
    assert [b.tolist() for b in back] == [line.tolist() for line in lines]
    simple = simplify_strokes(seq, 0.5)
    assert [s.tolist() for s in stroke3_to_lines(simple)] == [
        [[0, 0], [3, 0]],
        [[5, 5], [5, 7], [8, 7]],
    ]
    assert np.array_equal(simplify_strokes(seq, 0.0), seq)


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("seq", "match"),
    [
        (np.zeros((4, 2)), r"expected shape \(N, 3\).*found \(4, 2\)"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[0.0, np.nan, 0]]), "finite.*row 0"),
        (np.array([[0, 0, 0], [1, 1, 2]]), r"pen_lifted.*found 2 at row 1"),
        (np.array([["a", "b", "c"]]), "numeric"),
    ],
)
def test_validate_sequence_errors_name_dataset_and_index(seq: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=rf"toy\.npz\[train\]: sequence 7: .*{match}"):
        validate_sequence(seq, 7, "toy.npz[train]")


def test_validate_sequence_returns_float32() -> None:
    out = validate_sequence(np.array([[1, 2, 0], [3, 4, 1]], dtype=np.int16), 0, "x")
    assert out.dtype == np.float32 and out.tolist() == [[1, 2, 0], [3, 4, 1]]


def test_malformed_npz_names_file_split_and_index(tmp_path: Path, monkeypatch) -> None:
    items = np.empty(3, dtype=object)
    items[0] = np.array([[0, 0, 0], [1, 1, 1]], dtype=np.int16)
    items[1] = np.array([[0, 0, 0], [1, 1, 3]], dtype=np.int16)  # pen value 3
    items[2] = np.array([[2, 2, 1]], dtype=np.int16)
    path = tmp_path / "strokes" / "omniglot.npz"
    path.parent.mkdir()
    np.savez(path, train=items, valid=items[:1], test=items[:1])
    spec = FileSpec("strokes", "omniglot.npz", file_sha256(path), None)
    monkeypatch.setitem(strokes_mod.NPZ_FILES, "omniglot", spec)
    with pytest.raises(DataError, match=r"omniglot\.npz\[train\]: sequence 1: .*found 3 at row 1"):
        load_strokes("omniglot", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_strokes("aaron_sheep", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="unknown stroke dataset 'sheep'"):
        load_strokes("sheep", "train", data_dir=tmp_path)


# ------------------------------------------------------------------------------ real data
def test_omniglot_npz_splits_filter_and_scale(real_data_dir: Path) -> None:
    path = real_data_dir / "strokes" / "omniglot.npz"
    raw = np.load(path, allow_pickle=True, encoding="latin1")
    for split, size in OMNIGLOT_SPLITS.items():
        assert len(raw[split]) == size
    train = load_strokes("omniglot", "train", data_dir=real_data_dir, max_length=100)
    too_long = sum(len(s) > 100 for s in raw["train"])
    assert too_long > 0
    assert train.info["num_raw"] == 30_000 and train.info["num_too_long"] == too_long
    assert len(train) == 30_000 - too_long and train.lengths.max() <= 100
    json.dumps(train.info)
    kept = [s for s in raw["train"] if len(s) <= 100]
    expected_factor = np.concatenate([s[:, :2].ravel() for s in kept]).astype(np.float64).std()
    assert train.scale_factor == pytest.approx(expected_factor, rel=1e-9)
    offsets = np.concatenate([s[:, :2] for s in train.sequences]).astype(np.float64)
    assert offsets.std() == pytest.approx(1.0, abs=1e-5)  # appendix sec. 1
    assert all(s.dtype == np.float32 and s.shape[1] == 3 for s in train.sequences[:100])
    # valid/test: the *training* factor, computed or given
    test = load_strokes("omniglot", "test", data_dir=real_data_dir, max_length=100)
    assert test.info["num_raw"] == 1_000
    assert test.info["num_too_long"] == sum(len(s) > 100 for s in raw["test"])
    assert test.scale_factor == train.scale_factor
    assert test.info["scale_factor_source"] == "train split"
    factor = training_scale_factor("omniglot", data_dir=real_data_dir, max_length=100)
    assert factor == train.scale_factor
    given_ = load_strokes(
        "omniglot", "test", data_dir=real_data_dir, max_length=100, scale_factor=2.0
    )
    test_raw = [s for s in raw["test"] if len(s) <= 100]
    np.testing.assert_allclose(given_.sequences[0][:, :2], test_raw[0][:, :2] / 2.0)
    np.testing.assert_allclose(
        test.sequences[5][:, :2] * train.scale_factor, test_raw[5][:, :2], rtol=1e-5, atol=1e-3
    )
    assert np.array_equal(test.sequences[5][:, 2], test_raw[5][:, 2])


def test_concatenated_npz_datasets(real_data_dir: Path) -> None:
    data = load_strokes(
        ["omniglot", "kanji.rdp100"], "valid", data_dir=real_data_dir, scale_factor=10.0
    )
    assert len(data) == 1_000 + 600 and data.name == "omniglot+kanji.rdp100"
    assert np.bincount(data.labels).tolist() == [1_000, 600]
    assert data.info["classes"] == ["omniglot", "kanji.rdp100"]


def test_quickdraw_classes_from_zip(real_data_dir: Path) -> None:
    train = load_strokes("quickdraw", "train", classes=["cat", "pig"], data_dir=real_data_dir)
    assert len(train) == 30 and train.labels.tolist() == [0] * 15 + [1] * 15
    assert train.info["classes"] == ["cat", "pig"]
    # the first cat drawing, converted independently: offsets of the concatenated points
    zpath = real_data_dir / "quickdraw_strokes" / "quickdraw_simplified_first25.zip"
    with zipfile.ZipFile(zpath) as archive:
        text = archive.read("quickdraw_simplified_first25/cat.ndjson").decode()
    drawing = json.loads(text.splitlines()[0])["drawing"]
    points = np.concatenate([np.array(s, dtype=float).T for s in drawing])
    pen_rows = np.cumsum([len(s[0]) for s in drawing]) - 1
    seq = train.sequences[0] * np.float32([train.scale_factor, train.scale_factor, 1])
    assert seq[0, :2].tolist() == [0, 0]  # the first point is at the origin
    np.testing.assert_allclose(np.cumsum(seq[:, :2], 0), points - points[0], atol=1e-3)
    assert np.flatnonzero(seq[:, 2]).tolist() == pen_rows.tolist()
    test = load_strokes("quickdraw", "test", classes=["cat", "pig"], data_dir=real_data_dir)
    assert len(test) == 10 and test.scale_factor == train.scale_factor
    with pytest.raises(DataError, match="no category 'unicorn'"):
        load_strokes("quickdraw", "train", classes=["unicorn"], data_dir=real_data_dir)
    with pytest.raises(DataError, match="classes apply to 'quickdraw' only"):
        load_strokes("omniglot", "train", classes=["cat"], data_dir=real_data_dir)


def test_glyph_strokes() -> None:
    from tasks.data import load_images

    data = load_strokes("glyphs", "test", scale_factor=1.0)
    truth = load_images("glyphs", "test").extras
    assert len(data) == 1_000 and data.info["num_too_long"] == 0
    pen_lifts = np.array([int(s[:, 2].sum()) for s in data.sequences])
    assert np.array_equal(pen_lifts, truth["num_strokes"].numpy())
    assert pen_lifts.max() <= MAX_STROKES
    offsets = np.concatenate([s[:, :2] for s in data.sequences])
    assert np.array_equal(offsets, np.round(offsets))  # integer pixel offsets
    assert all(s[0, :2].tolist() == [0, 0] for s in data.sequences)
    extent = [np.ptp(np.cumsum(s[:, :2], 0), 0).max() for s in data.sequences]
    assert 10 < np.median(extent) <= 2 * 0.8 * 127.5 + 1  # in a ~255-pixel frame


# ----------------------------------------------------------------------- augmentation, batches
def test_augment_scales_each_axis_per_sketch_within_range() -> None:
    rng = np.random.default_rng(0)
    seqs = [np.array([[1, 2, 0], [3, -4, 1]], dtype=np.float32) for _ in range(200)]
    out = augment(seqs, rng)
    ratios = np.array([o[:, :2] / s[:, :2] for o, s in zip(out, seqs, strict=True)])  # (200, 2, 2)
    np.testing.assert_allclose(ratios[:, 0], ratios[:, 1], rtol=1e-6)  # one factor per axis
    assert ratios.min() >= 0.9 - 1e-6 and ratios.max() <= 1.1 + 1e-6
    assert ratios[:, 0, 0].std() > 0.03 and abs(np.corrcoef(ratios[:, 0].T)[0, 1]) < 0.3
    assert all(np.array_equal(o[:, 2], s[:, 2]) for o, s in zip(out, seqs, strict=True))
    assert seqs[0][0, 0] == 1  # inputs untouched


def _magenta_drop(seq3: np.ndarray, draws: np.ndarray, prob: float) -> np.ndarray:
    """magenta's ``augment_strokes`` loop, written out, with the uniform draws given."""
    result: list[list[float]] = []
    prev, count, stroke = [0.0, 0.0, 1.0], 0, [0.0, 0.0, 1.0]
    for row, u in zip(seq3.tolist(), draws, strict=True):
        count = 0 if row[2] == 1 or prev[2] == 1 else count + 1
        if row[2] == 0 and prev[2] == 0 and count > 2 and u < prob:
            stroke[0] += row[0]
            stroke[1] += row[1]
        else:
            stroke = prev = list(row)
            result.append(stroke)
    return np.array(result, dtype=np.float32)


@pytest.mark.parametrize("prob", [0.1, 0.5, 0.95])
def test_drop_points_matches_magentas_loop(prob: float) -> None:
    rng = np.random.default_rng(11)
    seq = rng.normal(size=(60, 3)).astype(np.float32)
    seq[:, 2] = (rng.random(60) < 0.15).astype(np.float32)
    seq[-1, 2] = 1
    out = drop_points(seq, np.random.default_rng(4), prob)
    expected = _magenta_drop(seq, np.random.default_rng(4).random(60), prob)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert len(out) < len(seq)  # something was dropped
    # pen-lifted points and the sketch's end point stay where they were
    lifted = np.cumsum(seq[:, :2], 0)[seq[:, 2] == 1]
    np.testing.assert_allclose(np.cumsum(out[:, :2], 0)[out[:, 2] == 1], lifted, atol=1e-4)


def test_drop_points_keeps_short_strokes_and_prob_zero() -> None:
    seq = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 1]] * 5, dtype=np.float32)  # 3-point strokes
    assert np.array_equal(drop_points(seq, np.random.default_rng(0), 0.99), seq)
    long = np.array([[1, 2, 0]] * 9 + [[1, 2, 1]], dtype=np.float32)
    assert np.array_equal(drop_points(long, np.random.default_rng(0), 0.0), long)
    thinned = drop_points(long, np.random.default_rng(0), 0.999)
    assert len(thinned) == 4  # the first three points and the pen-lifted end survive
    np.testing.assert_allclose(thinned[:2], long[:2])
    np.testing.assert_allclose(thinned[2], [7, 14, 0])  # moved onto the last dropped point
    np.testing.assert_allclose(thinned[:, :2].sum(0), long[:, :2].sum(0))


def test_stroke_batches_deterministic_by_step() -> None:
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(int(rng.integers(1, 9)), 3)).astype(np.float32) for _ in range(10)]
    for s in seqs:
        s[:, 2] = rng.integers(0, 2, len(s))
    batches = StrokeBatches(seqs, 4, seed=5)
    assert batches.batches_per_epoch == 2 and batches.max_length == max(len(s) for s in seqs)
    x5, lengths = batches.batch(3)
    again = StrokeBatches(seqs, 4, seed=5).batch(3)  # a fresh instance (resume) agrees
    assert torch.equal(x5, again[0]) and torch.equal(lengths, again[1])
    idx = batches.indices(3).tolist()
    expected, expected_len = pad_batch(
        augment([seqs[i] for i in idx], batches.rng(3)), batches.max_length
    )
    assert torch.equal(x5, expected) and torch.equal(lengths, expected_len)
    assert x5.shape == (4, batches.max_length + 1, 5) and x5.dtype == torch.float32
    assert not torch.equal(batches.batch(1)[0], batches.batch(3)[0])
    plain = StrokeBatches(seqs, 4, seed=5, augment=False).batch(3)[0]
    assert torch.equal(plain, pad_batch([seqs[i] for i in idx], batches.max_length)[0])
    # the two batches of an epoch cover distinct sequences
    assert not set(batches.indices(2).tolist()) & set(idx)
    dropping = StrokeBatches(seqs, 4, seed=5, drop_prob=0.5, random_scale=0.15)
    expected = pad_batch(
        augment([seqs[i] for i in idx], dropping.rng(3), 0.15, 0.5), dropping.max_length
    )
    assert torch.equal(dropping.batch(3)[0], expected[0])
    with pytest.raises(ValueError, match="drop_prob"):
        StrokeBatches(seqs, 4, drop_prob=1.0)
    with pytest.raises(ValueError, match="batch size 11"):
        StrokeBatches(seqs, 11)


def test_scale_factor_of_pools_both_axes() -> None:
    seqs = [np.array([[1, -1, 0], [3, -3, 1]], dtype=np.float32)]
    assert scale_factor_of(seqs) == pytest.approx(np.std([1, -1, 3, -3]))
    with pytest.raises(DataError, match="standard deviation 0"):
        scale_factor_of([np.zeros((2, 3))])


def test_stroke_sequence_scores_a_padded_batch() -> None:
    """End to end: data batch → targets → StrokeSequence.log_prob is finite and shaped (B,)."""
    seqs = [np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32), np.array([[2, 0, 1]], np.float32)]
    x5, lengths = pad_batch(seqs, 3)
    _, targets = inputs_and_targets(x5)
    y = torch.zeros(2, 3, num_outputs(3))
    d = StrokeSequence(y, lengths)
    lp = d.log_prob(targets)
    assert lp.shape == (2,) and torch.isfinite(lp).all()
    # standard-normal components, uniform pen: the closed form
    log_n = lambda x: -math.log(2 * math.pi) - 0.5 * (x**2).sum()  # noqa: E731
    expected0 = log_n(np.zeros(2)) + log_n(np.ones(2)) + 3 * math.log(1 / 3)
    assert lp[0].item() == pytest.approx(expected0, rel=1e-6)
    assert isinstance(d.to_event(1), dist.Independent)
