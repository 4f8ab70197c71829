"""sketch-rnn model and guide as Pyro programs (Ha & Eck 2017, sec. 3.2–3.4, Eqs. 1–10)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

from generative.cells import HyperLSTMCell, LSTMDecoderCell
from generative.sketch_rnn import SketchRNN, stroke5_lengths
from generative.sketch_rnn_config import (
    CELLS,
    SKETCH_RNN_CONFIGS,
    SketchRNNConfig,
    sketch_rnn_config,
)
from generative.strokes import END_TOKEN
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import AnnealedKLObjective
from inference.iwae import importance_log_weights
from tasks.data.stroke_formats import pad_batch, to_stroke3
from tests.tiny import tiny_sketch_rnn

N_MAX = 12
TINY = tiny_sketch_rnn(max_length=N_MAX, hyper_hidden=8, hyper_embedding=4)


def _pair(config: SketchRNNConfig = TINY, seed: int = 0):
    torch.manual_seed(seed)
    model = SketchRNN(config)
    return model, SketchRNNGuide(model)


def _sketches(num: int = 5, seed: int = 1, max_len: int = N_MAX) -> list[np.ndarray]:
    """Random stroke-3 sketches of 2 … max_len points, each ending with a pen lift."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        n = int(rng.integers(2, max_len + 1))
        seq = np.zeros((n, 3), dtype=np.float32)
        seq[:, :2] = rng.normal(size=(n, 2))
        seq[:, 2] = rng.random(n) < 0.3
        seq[-1, 2] = 1
        out.append(seq)
    return out


def _batch(num: int = 5, seed: int = 1, max_length: int = N_MAX):
    return pad_batch(_sketches(num, seed), max_length)


def _samples(trace):
    return {
        n: s for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)
    }


# ---------------------------------------------------------------------------- configs
def test_paper_configuration():
    paper = SKETCH_RNN_CONFIGS["paper"]
    # appendix sec. 3: encoder 512 (2 × 256), decoder 2048 HyperLSTM, M = 20, N_z = 128, keep 0.9
    assert (paper.enc_hidden * 2, paper.dec_hidden, paper.num_mixtures, paper.z_dim) == (
        512,
        2048,
        20,
        128,
    )
    assert paper.cell == "hyper" and paper.recurrent_dropout == pytest.approx(0.1)
    assert paper.conditional and not SKETCH_RNN_CONFIGS["paper_decoder"].conditional
    assert SKETCH_RNN_CONFIGS["paper_layer_norm"].cell == "layer_norm"
    assert sketch_rnn_config("small", max_length=7).max_length == 7
    with pytest.raises(ValueError, match="unknown sketch-rnn config"):
        sketch_rnn_config("nope")
    with pytest.raises(ValueError, match="cell"):
        SketchRNNConfig(cell="gru")
    with pytest.raises(ValueError, match="recurrent_dropout"):
        SketchRNNConfig(recurrent_dropout=0.9 + 0.1)
    assert SketchRNNConfig.from_dict(paper.to_dict()) == paper
    with pytest.raises(ValueError, match="unknown sketch-rnn config fields"):
        SketchRNNConfig.from_dict({"bogus": 1})


# --------------------------------------------------------------------------- Pyro sites
def test_trace_exposes_z_and_strokes():
    model, guide = _pair()
    x5, lengths = _batch()
    guide_trace = poutine.trace(guide.guide).get_trace(x5, lengths)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
        x5, lengths
    )
    assert list(_samples(guide_trace)) == ["z"]
    sites = _samples(model_trace)
    assert list(sites) == ["z", "strokes"]
    assert sites["z"]["value"] is guide_trace.nodes["z"]["value"]
    assert sites["z"]["value"].shape == (5, TINY.z_dim)
    assert sites["z"]["fn"].event_shape == (TINY.z_dim,)
    assert sites["strokes"]["is_observed"]
    assert sites["strokes"]["fn"].event_shape == (N_MAX, 5)
    assert torch.equal(sites["strokes"]["value"], x5[:, 1:])
    for site in sites.values():
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]
    model_trace.compute_log_prob()
    assert model_trace.nodes["strokes"]["log_prob"].shape == (5,)


def test_decoder_only_model_has_no_latent():
    model, guide = _pair(sketch_rnn_config("small_decoder", max_length=N_MAX))
    x5, lengths = _batch()
    assert list(_samples(poutine.trace(guide.guide).get_trace(x5, lengths))) == []
    assert list(guide.parameters()) == []
    assert list(_samples(poutine.trace(model.model).get_trace(x5, lengths))) == ["strokes"]
    assert model.cell.lstm.input_size == 5  # x_i = S_{i-1} only (sec. 3.3)
    state = model.decoder_initial_state(None, batch_size=3)
    assert all(torch.equal(s, torch.zeros(3, 128)) for s in state)


def test_initial_state_is_tanh_of_a_linear_map_of_z():
    model, _ = _pair(sketch_rnn_config("small", max_length=N_MAX, cell="hyper", hyper_hidden=8))
    z = torch.randn(3, model.config.z_dim)
    flat = torch.tanh(z @ model.init_state.weight.T + model.init_state.bias)
    state = model.decoder_initial_state(z)
    assert [s.shape[-1] for s in state] == [128, 128, 8, 8]  # (h, c, ĥ, ĉ)
    torch.testing.assert_close(torch.cat(state, -1), flat)
    with pytest.raises(ValueError, match="needs z"):
        model.decoder_initial_state(None, 3)


def test_lengths_are_derived_and_checked():
    model, _ = _pair()
    x5, lengths = _batch()
    assert torch.equal(stroke5_lengths(x5), lengths)
    full = pad_batch([_sketches(1, max_len=N_MAX)[0][:1].repeat(N_MAX, 0)], N_MAX)[0]
    assert stroke5_lengths(full).item() == N_MAX  # no end row when N_s = N_max
    with pytest.raises(ValueError, match="N_max"):
        model.model(pad_batch(_sketches(2), N_MAX + 1)[0])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1"):
        model.model(x5, torch.zeros_like(lengths))


# ------------------------------------------------------------------------ likelihood
def _direct_reconstruction_loss(y: torch.Tensor, targets: torch.Tensor, lengths, m: int):
    """Eq. 9 written out: bivariate normals with σ = exp(σ̂), ρ = tanh(ρ̂) (Eqs. 3, 5–7)."""
    groups = y[..., : 6 * m].unflatten(-1, (m, 6))
    pi = torch.softmax(groups[..., 0], -1)
    mx, my = groups[..., 1], groups[..., 2]
    sx, sy, rho = groups[..., 3].exp(), groups[..., 4].exp(), torch.tanh(groups[..., 5])
    q = torch.softmax(y[..., 6 * m :], -1)
    dx, dy = targets[..., 0:1], targets[..., 1:2]
    zx, zy = (dx - mx) / sx, (dy - my) / sy
    quad = zx**2 + zy**2 - 2 * rho * zx * zy
    dens = torch.exp(-quad / (2 * (1 - rho**2))) / (2 * math.pi * sx * sy * torch.sqrt(1 - rho**2))
    n_max = targets.shape[-2]
    mask = torch.arange(n_max) < lengths.unsqueeze(-1)
    l_s = -(torch.log((pi * dens).sum(-1)) * mask).sum(-1) / n_max
    l_p = -(targets[..., 2:] * torch.log(q)).sum((-1, -2)) / n_max
    return l_s + l_p


@pytest.mark.parametrize("cell", CELLS)
def test_strokes_log_prob_is_minus_n_max_times_eq9(cell):
    config = sketch_rnn_config(
        "small", cell=cell, max_length=N_MAX, dec_hidden=16, num_mixtures=3, z_dim=4
    )
    model, guide = _pair(config)
    model.double().eval()
    guide.double()
    x5, lengths = _batch()
    x5 = x5.double()
    z = torch.randn(5, 4, dtype=torch.float64)
    trace = poutine.trace(poutine.condition(model.model, data={"z": z})).get_trace(x5, lengths)
    trace.compute_log_prob()
    log_p = trace.nodes["strokes"]["log_prob"]
    y = model.decoder_outputs(x5[:, :-1], z)
    expected = _direct_reconstruction_loss(y, x5[:, 1:], lengths, 3)
    torch.testing.assert_close(-log_p / N_MAX, expected)


def test_vectorised_particles_give_per_particle_log_probs():
    model, guide = _pair()
    model.eval()
    x5, lengths = _batch()
    z = torch.randn(3, 5, TINY.z_dim)
    with pyro.plate("particles", 3, dim=-2):
        trace = poutine.trace(poutine.condition(model.model, data={"z": z})).get_trace(x5, lengths)
    trace.compute_log_prob()
    log_p = trace.nodes["strokes"]["log_prob"]
    assert log_p.shape == (3, 5)
    for k in range(3):
        single = poutine.trace(poutine.condition(model.model, data={"z": z[k]})).get_trace(
            x5, lengths
        )
        single.compute_log_prob()
        torch.testing.assert_close(log_p[k], single.nodes["strokes"]["log_prob"])
    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    loss = elbo.differentiable_loss(model.model, guide.guide, x5, lengths)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", ["small", "small_decoder"])
def test_generic_iwae_repeats_the_batch(name):
    model, guide = _pair(sketch_rnn_config(name, max_length=N_MAX))
    model.eval()
    x5, lengths = _batch(4)
    log_w = importance_log_weights(model.model, guide.guide, x5, lengths, num_particles=6)
    assert log_w.shape == (6, 4) and torch.isfinite(log_w).all()
    if name == "small_decoder":  # no latent: every weight is the exact log-likelihood
        torch.testing.assert_close(log_w, log_w[:1].expand(6, 4))
    # lengths derived from x5 when omitted (how tasks.evaluate calls model(x) alone)
    log_w2 = importance_log_weights(model.model, guide.guide, x5, num_particles=2)
    assert log_w2.shape == (2, 4)


# ------------------------------------------------------------------------------ cells
def test_per_step_lstm_equals_the_fused_lstm():
    torch.manual_seed(0)
    cell = LSTMDecoderCell(7, 11, dropout=0.2).double()
    x = torch.randn(3, 9, 7, dtype=torch.float64)
    state = (torch.randn(3, 11, dtype=torch.float64), torch.randn(3, 11, dtype=torch.float64))
    fused, (h, c) = cell.sequence(x, state, training=False)
    assert cell.uses_fused(False) and not cell.uses_fused(True)
    xw, s, outs = cell.project(x), state, []
    for t in range(9):
        s = cell.step_projected(xw[:, t], s, training=False)
        outs.append(s[0])
    torch.testing.assert_close(fused, torch.stack(outs, 1))
    torch.testing.assert_close((h, c), s)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_acts_only_in_training(cell):
    config = sketch_rnn_config(
        "small", cell=cell, recurrent_dropout=0.3, max_length=N_MAX, hyper_hidden=8
    )
    model, _ = _pair(config)
    x5, _ = _batch()
    z = torch.randn(5, config.z_dim)
    model.train()
    a, b = model.decoder_outputs(x5[:, :-1], z), model.decoder_outputs(x5[:, :-1], z)
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(
        model.decoder_outputs(x5[:, :-1], z), model.decoder_outputs(x5[:, :-1], z)
    )


def test_hyper_lstm_starts_with_scalings_of_one_tenth_and_learns_them():
    torch.manual_seed(0)
    cell = HyperLSTMCell(5, 6, hyper_hidden=4, hyper_embedding=3)
    hyper_h = torch.randn(2, 4)
    scale = torch.einsum(
        "bke,keh->bkh", cell.z_scale(hyper_h).unflatten(-1, (8, 3)), cell.scale_weight
    )
    torch.testing.assert_close(scale, torch.full((2, 8, 6), 0.1))
    state = tuple(torch.zeros(2, n) for n in cell.state_sizes)
    x = torch.randn(2, 4, 5)
    optim = torch.optim.SGD(cell.parameters(), lr=0.1)
    for _ in range(2):
        # step 1: the hyper cell gets no gradient yet (z_scale.weight and bias_weight start at 0,
        # as in the reference code, so the scalings do not depend on ĥ); after it, it does
        optim.zero_grad()
        out, _ = cell.sequence(x, state)
        out.square().sum().backward()
        optim.step()
    names = ("z_scale.weight", "z_bias.weight", "bias_weight", "hyper.weight_x", "weight_h")
    for name in names:
        assert cell.get_parameter(name).grad.abs().sum() > 0, name


# -------------------------------------------------------------------------- encoder
def test_encoder_is_invariant_to_padding_length_and_content():
    model, guide = _pair()
    long_model = SketchRNN(sketch_rnn_config("small", **{**TINY.to_dict(), "max_length": 40}))
    long_guide = SketchRNNGuide(long_model)
    long_guide.load_state_dict(guide.state_dict())
    sketches = _sketches(5)
    x5, lengths = pad_batch(sketches, N_MAX)
    x5_long, lengths_long = pad_batch(sketches, 40)
    x5_noisy = x5.clone()
    pad = torch.arange(N_MAX + 1) > lengths.unsqueeze(-1)
    x5_noisy[pad] = torch.randn(int(pad.sum()), 5)  # garbage after N_s
    mu, sigma = guide.encode(x5, lengths)
    mu_long, sigma_long = long_guide.encode(x5_long, lengths_long)
    mu_noisy, sigma_noisy = guide.encode(x5_noisy, lengths)
    torch.testing.assert_close(mu, mu_long, rtol=0, atol=1e-6)
    torch.testing.assert_close(sigma, sigma_long, rtol=0, atol=1e-6)
    torch.testing.assert_close(mu, mu_noisy, rtol=0, atol=1e-6)
    # Eq. 2: σ = exp(σ̂ / 2)
    _, sigma_hat = guide.posterior_params(x5, lengths)
    torch.testing.assert_close(sigma, torch.exp(sigma_hat / 2))


def test_encoder_equals_a_packed_bidirectional_lstm():
    # Eq. 1 with sequence lengths, as the reference code's bidirectional_dynamic_rnn
    from torch.nn.utils.rnn import pack_padded_sequence

    _, guide = _pair()
    x5, lengths = _batch(6, seed=7)
    bi = torch.nn.LSTM(5, TINY.enc_hidden, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(bi, name).copy_(getattr(guide.encoder_forward, name))
            getattr(bi, f"{name}_reverse").copy_(getattr(guide.encoder_backward, name))
        packed = pack_padded_sequence(x5[:, 1:], lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = bi(packed)
        torch.testing.assert_close(
            guide.encoder_state(x5, lengths), torch.cat([h_n[0], h_n[1]], -1)
        )


# ---------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("cell", CELLS)
def test_zero_temperature_sampling_is_deterministic(cell):
    config = sketch_rnn_config("small", cell=cell, max_length=N_MAX, hyper_hidden=8)
    model, _ = _pair(config)
    z = torch.randn(3, config.z_dim)
    runs = [
        model.sample(z, 8, temperature=0.0, generator=torch.Generator().manual_seed(s))
        for s in (1, 2)
    ]
    torch.testing.assert_close(runs[0], runs[1])
    first = model.output(
        model.cell.step(
            torch.cat([model.start_token.expand(3, 5), z], -1), model.decoder_initial_state(z)
        )[0]
    )
    m = config.num_mixtures
    groups = first[:, : 6 * m].unflatten(-1, (m, 6))
    best = groups[..., 0].argmax(-1)
    mean = groups[torch.arange(3), best][:, 1:3]
    pen = first[:, 6 * m :].argmax(-1)
    expected = torch.where(
        (pen == 2).unsqueeze(-1),
        torch.tensor(END_TOKEN),
        torch.cat([mean, torch.nn.functional.one_hot(pen, 3).float()], -1),
    )
    torch.testing.assert_close(runs[0][:, 0], expected)
    noisy = model.sample(z, 8, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(noisy, runs[0])


def test_samples_stop_at_end_of_sketch():
    model, _ = _pair()
    with torch.no_grad():
        model.output.bias[-3:] = torch.tensor([0.0, 0.0, 30.0])  # p_3 certain
    out = model.sample(None, 6, batch_size=2)
    assert torch.equal(out, torch.tensor(END_TOKEN).expand(2, 6, 5))
    assert to_stroke3(out[0], start_token=False).shape == (0, 3)


def test_prefix_is_teacher_forced_and_continued():
    model, _ = _pair()
    with torch.no_grad():
        model.output.bias[-3:] = torch.tensor([20.0, 0.0, -20.0])  # pen down, never end
    z = torch.randn(2, TINY.z_dim)
    full = model.sample(z, 9, temperature=0.0)
    rest = model.sample(z, 5, temperature=0.0, prefix=full[:, :4])
    torch.testing.assert_close(rest, full[:, 4:])
    with pytest.raises(ValueError, match="end-of-sketch"):
        model.sample(z, 3, prefix=torch.tensor(END_TOKEN).expand(2, 1, 5))
    with pytest.raises(ValueError, match="inconsistent batch"):
        model.sample(z, 3, batch_size=3)
    decoder_only, _ = _pair(sketch_rnn_config("small_decoder", max_length=N_MAX))
    with pytest.raises(ValueError, match="takes z=None"):
        decoder_only.sample(z, 3)
    assert decoder_only.sample(None, 4, prefix=full[:, :2]).shape == (2, 4, 5)


def test_generative_mode_samples_ancestrally():
    model, _ = _pair()
    model.eval()
    trace = poutine.trace(model.model).get_trace(batch_size=3)
    sites = _samples(trace)
    assert list(sites) == ["z", "strokes"] and not sites["strokes"]["is_observed"]
    value = sites["strokes"]["value"]
    assert value.shape == (3, N_MAX, 5)
    trace.compute_log_prob()
    assert trace.nodes["strokes"]["log_prob"].shape == (3,)
    # its log_prob is the teacher-forced Eq. 9 likelihood of the drawn sketch
    x5 = torch.cat([model.start_token.expand(3, 1, 5), value], 1)
    cond = poutine.condition(model.model, data={"z": sites["z"]["value"]})
    forced = poutine.trace(cond).get_trace(x5)
    forced.compute_log_prob()
    torch.testing.assert_close(
        trace.nodes["strokes"]["log_prob"], forced.nodes["strokes"]["log_prob"]
    )


# ---------------------------------------------------------------------------- learning
def test_a_tiny_model_overfits_a_few_sketches():
    pyro.enable_validation(False)
    config = sketch_rnn_config(
        "small", max_length=N_MAX, enc_hidden=32, dec_hidden=64, z_dim=8, num_mixtures=3
    )
    model, guide = _pair(config)
    x5, lengths = _batch(8, seed=3)
    objective = AnnealedKLObjective(w_kl=1.0, kl_min=0.2, eta_min=0.01, decay_rate=0.99)
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=1e-2)
    history = []
    for step in range(100):
        optim.zero_grad()
        loss, metrics = objective(model, guide, (x5, lengths), step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        history.append(metrics["L_R"])
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first - 1.0, (first, last)


def test_build_round_trip_through_the_task_builder():
    from tasks.sketch_rnn import FAMILY
    from tasks.sketch_rnn.models import build_sketch_rnn

    config = sketch_rnn_config("small", max_length=N_MAX, scale_factor=12.5).to_dict()
    model, guide = build_sketch_rnn(config)
    assert model.config.scale_factor == 12.5
    model2, guide2 = build_sketch_rnn(model.config.to_dict())
    model2.load_state_dict(model.state_dict())
    guide2.load_state_dict(guide.state_dict())
    x5, lengths = _batch()
    model.eval()
    model2.eval()
    torch.manual_seed(0)
    a = importance_log_weights(model.model, guide.guide, x5, lengths, num_particles=2)
    torch.manual_seed(0)
    b = importance_log_weights(model2.model, guide2.guide, x5, lengths, num_particles=2)
    torch.testing.assert_close(a, b)
    assert "small" in FAMILY.model("sketch-rnn").configs
    assert "small_decoder" in FAMILY.model("sketch-rnn-decoder").configs
    with pytest.raises(ValueError, match="expected a decoder-only sketch-rnn config"):
        FAMILY.model("sketch-rnn-decoder").build(config)
    with pytest.raises(ValueError, match="unknown sketch-rnn config fields"):
        build_sketch_rnn({**config, "oops": 1})


def _tiny_run(tmp_path, **run):
    from tasks.options import RunOptions
    from tasks.sketch_rnn.models import SketchRNNOptions

    run_options = RunOptions(
        **{
            "config": "small",
            "dataset": ["quickdraw"],
            "out": str(tmp_path / "run"),
            "steps": 4,
            "batch_size": 5,
            "validate_every": 2,
            "checkpoint_every": 2,
            "log_every": 1,
            "pictures": False,
            "progress": False,
            **run,
        }
    )
    options = SketchRNNOptions(
        classes=["cat"],
        config_overrides={"enc_hidden": 8, "dec_hidden": 16, "z_dim": 4, "num_mixtures": 2},
        valid_examples=5,
        eval_examples=5,
        iwae_samples=3,
    )
    return run_options, options


def test_training_task_end_to_end_and_evaluate_command(tmp_path, capsys, real_data_dir):
    import json

    from tasks.cli import main
    from tasks.families import load_trained
    from tasks.sketch_rnn import FAMILY
    from tasks.training import train

    pyro.enable_validation(False)
    run, options = _tiny_run(tmp_path)
    result = train(FAMILY, "sketch-rnn", run, options)
    assert result["step"] == 4 and result["num_examples"] == 5 and result["iwae_samples"] == 3
    assert math.isfinite(result["L_R"]) and math.isfinite(result["log_likelihood_nats_per_sketch"])
    assert math.isfinite(result["best_valid_loss"]) and result["train_seconds"] > 0
    # the reference eval's reading drops (non-negative) pen losses: per sketch never above Eq. 9
    per = result["per_sketch"]
    assert len(per["L_R_n_s"]) == 5
    assert all(a < b for a, b in zip(per["L_R_n_s"], per["L_R"], strict=True))
    assert result["L_R_n_s"] == pytest.approx(float(np.mean(per["L_R_n_s"])))
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["L_KL"] == pytest.approx(result["L_KL"])
    assert (tmp_path / "run" / "best.pt").is_file()
    model, _, ckpt = load_trained(tmp_path / "run" / "checkpoint.pt")
    data = ckpt.record.data
    assert model.config.scale_factor == data["info"]["train"]["scale_factor"]
    assert model.config.max_length == max(i["length_max"] for i in data["info"].values())
    assert data["dataset"] == "quickdraw" and data["classes"] == ["cat"] and data["augment"]
    assert ckpt.record.objective == options.objective().config()
    code = main(
        [
            "evaluate",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--split",
            "valid",
            "--iwae-samples",
            "2",
            "--batch-size",
            "10",
            "--json",
            str(tmp_path / "eval_valid.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    valid = json.loads((tmp_path / "eval_valid.json").read_text())
    assert valid["split"] == "valid" and valid["num_examples"] == 5 and valid["step"] == 4

    # resume: to 6 steps with the same settings; a different --config or KL setting is refused
    run6, options = _tiny_run(tmp_path, steps=6, resume=str(tmp_path / "run" / "checkpoint.pt"))
    assert train(FAMILY, "sketch-rnn", run6, options)["step"] == 6
    resume = ["--resume", str(tmp_path / "run" / "checkpoint.pt"), "--steps", "8"]
    with pytest.raises(ValueError, match="--config small"):
        run8, options = _tiny_run(tmp_path, steps=8, resume=resume[1], config="paper")
        train(FAMILY, "sketch-rnn", replace(run8, given=frozenset({"config"})), options)
    with pytest.raises(ValueError, match="objective settings"):
        run8, options = _tiny_run(tmp_path, steps=8, resume=resume[1])
        train(FAMILY, "sketch-rnn", run8, replace(options, w_kl=0.5))
    capsys.readouterr()
    code = main(["train", "sketch-rnn", *resume, "--config", "reference", "--no-progress"])
    assert code == 1 and "drop --config to continue it" in capsys.readouterr().err


def test_old_checkpoint_record_resumes(tmp_path, real_data_dir):
    """A checkpoint written before the run record (``augment`` top-level) reads into the record
    the plan writes now, so resuming it is not refused."""
    from inference.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
    from tasks.sketch_rnn import FAMILY
    from tasks.training import train

    pyro.enable_validation(False)
    run, options = _tiny_run(tmp_path, steps=2)
    train(FAMILY, "sketch-rnn", run, options)
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    payload["augment"] = payload["data"].pop("augment")  # the layout of the old checkpoints
    old = save_checkpoint(payload, tmp_path / "old.pt")
    assert read_checkpoint(old).record.data["augment"] is True
    run3, options = _tiny_run(tmp_path, steps=3, resume=str(old))
    assert train(FAMILY, "sketch-rnn", run3, options)["step"] == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--batch-size", "0"],
        ["--lr", "0"],
        ["--max-length", "0"],
        ["--valid-examples", "0"],
        ["--eval-examples", "0"],
        ["--iwae-samples", "-1"],
        ["--w-kl", "-1"],
        ["--eta-min", "1.5"],
        ["--kl-decay", "0"],
        ["--kl-decay", "1.1"],
        ["--lr-decay", "0"],
        ["--dataset", "mnist"],
        ["--config", "small_decoder"],
    ],
)
def test_train_rejects_bad_values_at_parse_time(argv, capsys):
    from tasks.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "sketch-rnn", *argv])
    assert exc.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_decoder_train_parser_has_no_kl_options(capsys):
    from tasks.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "sketch-rnn-decoder", "--w-kl", "0.5"])
    assert exc.value.code == 2 and "unrecognized arguments: --w-kl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "sketch-rnn-decoder", "--help"])
    text = capsys.readouterr().out
    assert "--no-augment" in text and "--lr-decay" in text and "--kl-min" not in text
    assert "(default: small_decoder)" in text and "(default: runs/sketch-rnn-decoder)" in text
