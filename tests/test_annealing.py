"""KL annealing and the KL floor of sketch-rnn's loss (appendix sec. 2, Eqs. 1–4)."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from torch import nn

from generative.sketch_rnn import SketchRNN
from generative.sketch_rnn_config import sketch_rnn_config
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import (
    AnnealedKLObjective,
    kl_annealing_weight,
    loss_terms,
    unannealed_loss,
)
from inference.trainer import SVITrainer, TrainConfig
from tasks.data.stroke_formats import pad_batch

pyro.enable_validation(False)


class Toy(nn.Module):
    """z ~ N(0, I_2), x ~ N(W z + b, I_3)."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2, 3)

    def model(self, x):
        pyro.module("toy", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)


class ToyGuide(nn.Module):
    """q(z | x) = N(μ, exp(σ̂/2)) with (μ, σ̂) = W x + b (the parametrisation of Eq. 2)."""

    def __init__(self, family=dist.Normal, offset: float = 0.0):
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.family, self.offset = family, offset

    def params(self, x):
        mu, sigma_hat = self.encoder(x).chunk(2, -1)
        return mu + self.offset, sigma_hat

    def guide(self, x):
        pyro.module("toy_guide", self)
        mu, sigma_hat = self.params(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.family(mu, torch.exp(sigma_hat / 2)).to_event(1))


def _toy(offset: float = 0.0, family=dist.Normal):
    torch.manual_seed(0)
    return Toy(), ToyGuide(family, offset), torch.randn(6, 3)


def test_annealing_schedule_of_appendix_eq4():
    assert kl_annealing_weight(0, 0.01, 0.99999) == pytest.approx(0.01)
    assert kl_annealing_weight(0, 0.0, 0.99995) == 0.0
    assert kl_annealing_weight(1000, 0.01, 0.99999) == pytest.approx(1 - 0.99 * 0.99999**1000)
    etas = [kl_annealing_weight(s, 0.01, 0.999) for s in (0, 10, 100, 1000, 10_000, 100_000)]
    assert etas == sorted(etas) and etas[-1] == pytest.approx(1.0)
    objective = AnnealedKLObjective(eta_min=0.2, decay_rate=0.9)
    assert objective.eta(0) == pytest.approx(0.2) and objective.eta(3) == pytest.approx(
        1 - 0.8 * 0.9**3
    )
    with pytest.raises(ValueError, match="step"):
        kl_annealing_weight(-1, 0.0, 0.9)
    with pytest.raises(ValueError, match="decay_rate"):
        AnnealedKLObjective(decay_rate=1.5)


def test_terms_are_analytic_kl_per_dimension_and_reconstruction():
    model, guide, x = _toy(offset=1.0)
    torch.manual_seed(3)
    terms = loss_terms(model, guide, (x,))
    mu, sigma_hat = guide.params(x)
    eq2 = -0.5 * (1 + sigma_hat - mu**2 - sigma_hat.exp()).mean(-1)  # appendix Eq. 2 (/N_z)
    torch.testing.assert_close(terms.kl_loss, eq2)
    assert terms.kl_normalizer == 2 and terms.recon_normalizer == 1  # no num_steps: nats
    torch.manual_seed(3)
    z = mu + torch.exp(sigma_hat / 2) * torch.randn_like(mu)  # the same draw
    log_lik = dist.Normal(model.decoder(z), 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(terms.log_lik, log_lik)
    torch.testing.assert_close(terms.elbo, log_lik - eq2 * 2)


def test_kl_floor_applies_to_the_batch_mean():
    model, guide, x = _toy(offset=0.0)
    with torch.no_grad():  # q = prior exactly: L_KL = 0 < KL_min
        guide.encoder.weight.zero_()
        guide.encoder.bias.zero_()
    objective = AnnealedKLObjective(w_kl=0.5, kl_min=0.3, eta_min=0.1, decay_rate=0.9)
    torch.manual_seed(1)
    loss, metrics = objective(model, guide, (x,), step=4)
    eta = 1 - 0.9 * 0.9**4
    assert metrics["L_KL"] == pytest.approx(0.0, abs=1e-7) and metrics["eta"] == pytest.approx(eta)
    assert loss.item() == pytest.approx(metrics["L_R"] + 0.5 * eta * 0.3, rel=1e-6)
    # below the floor the KL term gives no gradient: the encoder's gradient is the L_R one
    loss.backward()
    grad_floor = guide.encoder.weight.grad.clone()
    guide.zero_grad()
    torch.manual_seed(1)
    loss_terms(model, guide, (x,)).reconstruction_loss.mean().backward()
    torch.testing.assert_close(grad_floor, guide.encoder.weight.grad)
    # above the floor: L_R + w η L_KL
    model, guide, x = _toy(offset=2.0)
    loss, metrics = objective(model, guide, (x,), step=4)
    assert metrics["L_KL"] > 0.3
    assert loss.item() == pytest.approx(metrics["L_R"] + 0.5 * eta * metrics["L_KL"], rel=1e-6)


def test_unannealed_loss_of_appendix_eq3_has_no_floor():
    model, guide, x = _toy(offset=0.3)
    with torch.no_grad():  # q = N(0.3, 1): L_KL = 0.3² / 2 = 0.045 < 0.2
        guide.encoder.weight.zero_()
        guide.encoder.bias.zero_()
    loss, metrics = unannealed_loss(model, guide, (x,), w_kl=0.25)
    assert metrics["L_KL"] == pytest.approx(0.045) and metrics["eta"] == 1.0
    assert loss.item() == pytest.approx(metrics["L_R"] + 0.25 * metrics["L_KL"], rel=1e-6)
    objective = AnnealedKLObjective(w_kl=0.25)
    torch.manual_seed(0)
    a, _ = objective.unannealed(model, guide, (x,))
    torch.manual_seed(0)
    b, _ = unannealed_loss(model, guide, (x,), w_kl=0.25)
    torch.testing.assert_close(a, b)


def _student_t(loc, scale):
    return dist.StudentT(5.0, loc, scale)


def test_monte_carlo_kl_when_no_analytic_form():
    model, guide, x = _toy(offset=0.5, family=_student_t)  # no KL(StudentT ‖ Normal) in torch
    torch.manual_seed(2)
    terms = loss_terms(model, guide, (x,))
    torch.manual_seed(2)
    trace = pyro.poutine.trace(guide.guide).get_trace(x)
    z = trace.nodes["z"]["value"]
    mu, sigma_hat = guide.params(x)
    log_q = _student_t(mu, torch.exp(sigma_hat / 2)).log_prob(z).sum(-1)
    log_p = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(terms.kl, log_q - log_p)


def test_elbo_metric_matches_pyros_meanfield_elbo():
    model, guide, x = _toy(offset=0.7)
    torch.manual_seed(5)
    _, metrics = AnnealedKLObjective()(model, guide, (x,), 0)
    torch.manual_seed(5)
    loss = TraceMeanField_ELBO().differentiable_loss(model.model, guide.guide, x)
    assert metrics["elbo"] == pytest.approx(-loss.item() / len(x), rel=1e-5)


def _sketch_pair(name: str):
    torch.manual_seed(0)
    model = SketchRNN(sketch_rnn_config(name, max_length=10, dec_hidden=16, enc_hidden=8))
    seqs = [torch.tensor([[1.0, 0.5, 0], [0.2, -1.0, 1]] * k).numpy() for k in (1, 2, 5)]
    return model, SketchRNNGuide(model), pad_batch(seqs, 10)


def test_sketch_rnn_normalisers_are_n_max_and_n_z():
    model, guide, (x5, lengths) = _sketch_pair("small")
    model.eval()
    torch.manual_seed(0)
    terms = loss_terms(model, guide, (x5, lengths))
    assert terms.recon_normalizer == 10 and terms.kl_normalizer == model.config.z_dim
    torch.manual_seed(0)
    z = pyro.poutine.trace(guide.guide).get_trace(x5, lengths).nodes["z"]["value"]
    seq = model.likelihood(x5[:, :-1], z, lengths)
    torch.testing.assert_close(terms.reconstruction_loss, seq.reconstruction_loss(x5[:, 1:]))


def test_decoder_only_model_has_no_kl_term():
    model, guide, (x5, lengths) = _sketch_pair("small_decoder")
    loss, metrics = AnnealedKLObjective(kl_min=0.5)(model, guide, (x5, lengths), 0)
    assert metrics["L_KL"] == 0.0
    assert loss.item() == pytest.approx(metrics["L_R"])
    assert metrics["elbo"] == pytest.approx(-metrics["L_R"] * 10, rel=1e-6)


def test_misconfigured_sites_are_errors():
    model, guide, x = _toy()
    with pytest.raises(ValueError, match="not among latent_sites"):
        loss_terms(model, guide, (x,), latent_sites=("w",))
    with pytest.raises(ValueError, match="observed"):
        loss_terms(lambda x: None, lambda x: None, (x,))


def test_objective_drives_the_trainer(tmp_path):
    model, guide, x = _toy(offset=1.0)

    class Batches:
        batch_size = 6

        def batch(self, step):
            return (x,)

    objective = AnnealedKLObjective(eta_min=0.01, decay_rate=0.5)
    config = TrainConfig(steps=4, lr=1e-2, log_every=1, lr_decay=0.9, min_lr=1e-3)
    extra = {"model": "toy", "model_config": {}}
    trainer = SVITrainer(
        model,
        guide,
        Batches(),
        config,
        out_dir=tmp_path,
        checkpoint_extra=extra,
        progress=False,
        objective=objective,
    )
    state = trainer.fit()
    etas = [r["eta"] for r in state.history]
    assert etas == pytest.approx([1 - 0.99 * 0.5**s for s in range(4)])
    assert all(math.isfinite(r["L_R"]) and "L_KL" in r for r in state.history)
