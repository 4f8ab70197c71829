"""Tests for inference.iwae and tasks.evaluate on linear-Gaussian models with exact log p(x)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

import inference.iwae as iwae
from inference.iwae import (
    CPU_MAX_ROWS,
    MIN_PARETO_SAMPLES,
    auto_chunk_size,
    elbo_from_log_weights,
    importance_log_weights,
    iwae_bound,
    pareto_k,
)
from tasks.evaluate import evaluate_log_likelihood, format_summary
from tasks.results import write_json

# --- linear-Gaussian model: z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D) --------------------------
D_Z, D_X = 2, 3
W = torch.tensor([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.4]])
B_VEC = torch.tensor([0.5, -1.0, 0.2])
S_NOISE = 0.5
MARGINAL_COV = W @ W.T + S_NOISE**2 * torch.eye(D_X)
POST_COV = torch.linalg.inv(torch.eye(D_Z) + W.T @ W / S_NOISE**2)
POST_TRIL = torch.linalg.cholesky(POST_COV)


def model(x: torch.Tensor, offset: torch.Tensor | None = None) -> None:
    mean_shift = B_VEC if offset is None else B_VEC + offset
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(D_Z), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + mean_shift, S_NOISE).to_event(1), obs=x)


def posterior_mean(x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    centred = x - B_VEC if offset is None else x - B_VEC - offset
    return centred @ W @ POST_COV.T / S_NOISE**2


def exact_guide(x: torch.Tensor, offset: torch.Tensor | None = None) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(posterior_mean(x, offset), scale_tril=POST_TRIL))


def make_poor_guide(shift: float, scale: float):
    """Mean-field guide with a shifted mean and rescaled marginal posterior std."""
    std = scale * POST_COV.diagonal().sqrt()

    def guide(x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(posterior_mean(x) + shift, std).to_event(1))

    return guide


# Wide guide: bounded-ish weights (k̂ < 0.5), ELBO gap ≈ 1.4 nats. Narrow guide: heavy tails.
wide_poor_guide = make_poor_guide(0.5, 1.3)
narrow_poor_guide = make_poor_guide(0.5, 1.0)


def sample_data(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, D_Z, generator=g)
    return z @ W.T + B_VEC + S_NOISE * torch.randn(n, D_X, generator=g)


def exact_log_px(x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    loc = B_VEC if offset is None else B_VEC + offset
    return dist.MultivariateNormal(loc, MARGINAL_COV).log_prob(x).double()


@pytest.fixture(autouse=True)
def _seed():
    pyro.set_rng_seed(0)


# --- exact posterior guide ----------------------------------------------------------------------
@pytest.mark.parametrize("num_particles", [1, 7])
def test_exact_guide_gives_exact_log_likelihood_for_any_k(num_particles):
    x = sample_data(40)
    log_w = importance_log_weights(model, exact_guide, x, num_particles=num_particles, chunk_size=3)
    assert log_w.shape == (num_particles, 40)
    assert log_w.dtype == torch.float64
    exact = exact_log_px(x)
    # Every single weight equals p(x_b): also checks the particle-major (k, B) layout.
    torch.testing.assert_close(log_w, exact.expand(num_particles, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(iwae_bound(log_w), exact, atol=1e-4, rtol=0)
    torch.testing.assert_close(elbo_from_log_weights(log_w), exact, atol=1e-4, rtol=0)


def test_per_example_tensor_args_and_kwargs_are_repeated():
    x = sample_data(10)
    offset = torch.linspace(-2.0, 2.0, 10).unsqueeze(-1).expand(10, D_X).contiguous()
    exact = exact_log_px(x, offset)
    positional = importance_log_weights(model, exact_guide, x, offset, num_particles=5)
    keyword = importance_log_weights(model, exact_guide, x, num_particles=5, offset=offset)
    for log_w in (positional, keyword):
        torch.testing.assert_close(iwae_bound(log_w), exact, atol=1e-4, rtol=0)


# --- poor guide ---------------------------------------------------------------------------------
def test_poor_guide_iwae_converges_to_exact_and_beats_elbo():
    x = sample_data(200)
    exact = exact_log_px(x)
    log_w = importance_log_weights(model, wide_poor_guide, x, num_particles=5000, chunk_size=2500)
    iwae, elbo = iwae_bound(log_w), elbo_from_log_weights(log_w)
    # Seed-to-seed std of this mean error is ~0.002 nats; the ELBO gap is ~1.4 nats.
    assert abs((iwae - exact).mean().item()) < 0.01
    assert (iwae >= elbo - 1e-9).all()
    assert (iwae - elbo).mean().item() > 1.0
    assert (exact - elbo).mean().item() > 1.0


def test_iwae_mean_is_non_decreasing_in_k():
    x = sample_data(1000)
    exact = exact_log_px(x)
    means = []
    for k in (1, 10, 100, 1000):
        log_w = importance_log_weights(model, narrow_poor_guide, x, num_particles=k, chunk_size=100)
        means.append((iwae_bound(log_w) - exact).mean().item())
    # Over 20 seeds the smallest step was 0.04 nats, so this is far from the noise.
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means
    assert means[0] < -0.5 and abs(means[-1]) < 0.05, means


def test_automatic_chunks_probe_one_particle_then_fill_the_cpu_row_budget():
    passes = []

    def counted_model(x):
        passes.append(x.shape[0])
        model(x)

    x = sample_data(100)
    log_w = importance_log_weights(counted_model, exact_guide, x, num_particles=50)
    assert log_w.shape == (50, 100) and torch.isfinite(log_w).all()
    chunk = CPU_MAX_ROWS // 100  # memory is no bound for this model
    assert passes[0] == 100 and passes[1] == chunk * 100 and sum(passes) == 50 * 100
    torch.testing.assert_close(  # the exact posterior as guide: every weight is p(x)
        iwae_bound(log_w), exact_log_px(x).to(torch.float64), atol=1e-4, rtol=0
    )


def test_automatic_chunks_are_bounded_by_free_memory(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(iwae, "free_memory_bytes", lambda device: 10_000 * 1000)
    # 1000 bytes a row, half of 10 MB free: 5000 rows, but the CPU budget is CPU_MAX_ROWS.
    assert auto_chunk_size(10, 1000, cpu, 10_000) == CPU_MAX_ROWS // 10
    # 100 kB a row: 50 rows, 5 particles of 10 examples; never fewer than one particle.
    assert auto_chunk_size(10, 100_000, cpu, 10_000) == 5
    assert auto_chunk_size(10, 10**9, cpu, 10_000) == 1
    assert auto_chunk_size(10, 1000, cpu, 3) == 3  # never more particles than asked for
    monkeypatch.setattr(iwae, "free_memory_bytes", lambda device: None)  # unknown: the budget
    assert auto_chunk_size(10, 1000, cpu, 10_000) == CPU_MAX_ROWS // 10


def test_chunk_size_does_not_change_the_estimate():
    x = sample_data(200)
    exact = exact_log_px(x)
    small = importance_log_weights(model, wide_poor_guide, x, num_particles=500, chunk_size=7)
    large = importance_log_weights(model, wide_poor_guide, x, num_particles=500, chunk_size=500)
    default = importance_log_weights(model, wide_poor_guide, x, num_particles=9, max_rows=500)
    assert small.shape == large.shape == (500, 200)
    assert default.shape == (9, 200)
    err_small = (iwae_bound(small) - exact).mean().item()
    err_large = (iwae_bound(large) - exact).mean().item()
    assert abs(err_small - err_large) < 0.02
    assert abs(err_small) < 0.02 and abs(err_large) < 0.02
    # Weight distributions agree too (the ELBO mean is the same to Monte-Carlo precision).
    diff = (elbo_from_log_weights(small) - elbo_from_log_weights(large)).mean().item()
    assert abs(diff) < 0.05


# --- masks, scales ------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["distribution", "poutine"])
def test_masked_sites_contribute_zero(style):
    x = sample_data(6)
    keep = torch.tensor([True, False, True, False, True, False])

    def masked_model(x, keep):  # keep (B,) is repeated with x by importance_log_weights
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(D_Z), 1.0).to_event(1))
            likelihood = dist.Normal(z @ W.T + B_VEC, S_NOISE).to_event(1)
            if style == "distribution":
                pyro.sample("x", likelihood.mask(keep), obs=x)
            else:
                with poutine.mask(mask=keep):
                    pyro.sample("x", likelihood, obs=x)

    def prior_guide(x, keep):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(D_Z), 1.0).to_event(1))

    log_w = importance_log_weights(masked_model, prior_guide, x, keep, num_particles=4)
    assert torch.all(log_w[:, ~keep] == 0)  # prior proposal cancels, likelihood masked out
    assert torch.all(log_w[:, keep] < 0)


def test_scale_is_ignored():
    x = sample_data(20)
    scaled_model = poutine.scale(model, scale=0.01)
    log_w = importance_log_weights(scaled_model, exact_guide, x, num_particles=2)
    torch.testing.assert_close(iwae_bound(log_w), exact_log_px(x), atol=1e-4, rtol=0)


# --- convention violations ----------------------------------------------------------------------
def test_site_outside_data_plate_raises_naming_the_site():
    x = sample_data(5)

    def unplated_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(D_Z), 1.0).to_event(1))
        pyro.sample("pixels", dist.Normal(z @ W.T + B_VEC, S_NOISE).to_event(2), obs=x)

    with pytest.raises(ValueError, match=r"'pixels'.*shape \(\).*pyro\.plate"):
        importance_log_weights(unplated_model, exact_guide, x, num_particles=2)

    def global_latent_model(x):
        sigma = pyro.sample("sigma", dist.LogNormal(0.0, 0.1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(B_VEC, sigma).to_event(1), obs=x)

    def global_latent_guide(x):
        pyro.sample("sigma", dist.LogNormal(0.0, 0.1))

    with pytest.raises(ValueError, match="'sigma'"):
        importance_log_weights(global_latent_model, global_latent_guide, x, num_particles=2)


def test_guide_model_mismatch_raises():
    x = sample_data(5)

    def guide_with_extra_site(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(posterior_mean(x), scale_tril=POST_TRIL))
            pyro.sample("extra", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="guide site 'extra' does not appear in the model"):
        importance_log_weights(model, guide_with_extra_site, x, num_particles=2)

    def guide_with_observed_site(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(posterior_mean(x), scale_tril=POST_TRIL))
            pyro.sample("x", dist.Normal(torch.zeros(D_X), 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError, match="guide site 'x' is observed"):
        importance_log_weights(model, guide_with_observed_site, x, num_particles=2)

    def empty_guide(x):
        pass

    with pytest.raises(ValueError, match="model latent site 'z' is not proposed by the guide"):
        importance_log_weights(model, empty_guide, x, num_particles=2)


def test_nan_log_weights_raise():
    x = sample_data(5)
    x[2, 0] = math.nan
    with pytest.raises(ValueError, match=r"NaN or \+inf.*\[2\]"):
        with pyro.validation_enabled(False):
            importance_log_weights(model, exact_guide, x, num_particles=3)


def test_bad_arguments_raise():
    x = sample_data(5)
    with pytest.raises(ValueError, match="num_particles"):
        importance_log_weights(model, exact_guide, x, num_particles=0)
    with pytest.raises(ValueError, match="chunk_size"):
        importance_log_weights(model, exact_guide, x, chunk_size=0)
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        iwae_bound(torch.zeros(5))


# --- sequential model with pyro.markov ----------------------------------------------------------
A_DYN = torch.tensor([[0.9, 0.2], [-0.3, 0.8]])
Q_NOISE = 0.6
C_OUT = torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.2, 0.7]])


def sequential_model(x):
    with pyro.plate("data", x.shape[0]):
        z = None
        for t in pyro.markov(range(2)):
            loc = torch.zeros(x.shape[0], D_Z) if z is None else z @ A_DYN.T
            scale = 1.0 if z is None else Q_NOISE
            z = pyro.sample(f"z_{t}", dist.Normal(loc, scale).to_event(1))
        x_mean = pyro.deterministic("x_mean", z @ C_OUT.T + B_VEC)  # ignored by the estimator
        pyro.sample("x", dist.Normal(x_mean, S_NOISE).to_event(1), obs=x)


def _sequential_joint():
    """Joint Gaussian prior over (z_0, z_1) and the observation matrix H (x = H z + b + noise)."""
    prior = torch.cat(
        [
            torch.cat([torch.eye(D_Z), A_DYN.T], 1),
            torch.cat([A_DYN, A_DYN @ A_DYN.T + Q_NOISE**2 * torch.eye(D_Z)], 1),
        ],
        0,
    )
    h = torch.cat([torch.zeros(D_X, D_Z), C_OUT], 1)
    return prior, h


def sequential_exact_guide(x):
    prior, h = _sequential_joint()
    cov = torch.linalg.inv(torch.linalg.inv(prior) + h.T @ h / S_NOISE**2)
    mean = (x - B_VEC) @ h @ cov.T / S_NOISE**2
    c00, c01, c10, c11 = cov[:2, :2], cov[:2, 2:], cov[2:, :2], cov[2:, 2:]
    gain = c10 @ torch.linalg.inv(c00)
    with pyro.plate("data", x.shape[0]):
        z0 = None
        for t in pyro.markov(range(2)):
            if t == 0:
                z0 = pyro.sample("z_0", dist.MultivariateNormal(mean[:, :2], c00))
            else:
                cond_mean = mean[:, 2:] + (z0 - mean[:, :2]) @ gain.T
                pyro.sample("z_1", dist.MultivariateNormal(cond_mean, c11 - gain @ c01))


def test_sequential_markov_model_is_exact_with_exact_guide():
    x = sample_data(30)
    prior, h = _sequential_joint()
    exact = dist.MultivariateNormal(B_VEC, h @ prior @ h.T + S_NOISE**2 * torch.eye(D_X))
    log_w = importance_log_weights(sequential_model, sequential_exact_guide, x, num_particles=3)
    torch.testing.assert_close(iwae_bound(log_w), exact.log_prob(x).double(), atol=1e-4, rtol=0)


# --- Pareto k̂ -----------------------------------------------------------------------------------
def test_pareto_k_small_for_exact_guide_larger_for_poor_guide():
    x = sample_data(50)
    k_exact = pareto_k(importance_log_weights(model, exact_guide, x, num_particles=200))
    k_poor = pareto_k(importance_log_weights(model, narrow_poor_guide, x, num_particles=200))
    assert k_exact.shape == k_poor.shape == (50,)
    assert np.isfinite(k_exact).all() and np.isfinite(k_poor).all()
    assert k_exact.max() < 0.3
    assert k_poor.mean() > k_exact.mean() + 0.3


def test_pareto_k_edge_cases():
    rng = np.random.default_rng(0)
    heavy = torch.from_numpy(rng.standard_cauchy((2000, 3))).abs().log() * 3.0  # heavy tail
    light = torch.from_numpy(rng.normal(size=(2000, 3))) * 0.1
    k = pareto_k(torch.cat([heavy, light], 1))
    assert (k[:3] > 0.7).all() and (k[3:] < 0.5).all()
    assert pareto_k(torch.full((100, 2), -3.0)).tolist() == [0.0, 0.0]  # constant weights
    with pytest.warns(RuntimeWarning, match=str(MIN_PARETO_SAMPLES)):
        assert np.isnan(pareto_k(torch.zeros(5, 4))).all()


# --- tasks.evaluate -----------------------------------------------------------------------------
def test_evaluate_log_likelihood_report_and_json_round_trip(tmp_path):
    images = sample_data(30)
    result = evaluate_log_likelihood(
        model, exact_guide, images, num_particles=50, batch_size=8, progress=False
    )
    expected_keys = {
        "num_examples", "iwae_samples", "log_likelihood", "log_likelihood_stderr", "nll",
        "elbo", "elbo_stderr", "pareto_k", "per_example",
    }  # fmt: skip
    assert set(result) == expected_keys
    assert {"max", "mean", "fraction_above_0.7", "note"} <= set(result["pareto_k"])
    assert result["num_examples"] == 30 and result["iwae_samples"] == 50
    exact = exact_log_px(images)
    assert result["log_likelihood"] == pytest.approx(exact.mean().item(), abs=1e-4)
    assert result["nll"] == -result["log_likelihood"]
    assert result["elbo"] == pytest.approx(result["log_likelihood"], abs=1e-4)
    assert result["log_likelihood_stderr"] == pytest.approx(
        exact.std().item() / math.sqrt(30), rel=1e-3
    )
    per = result["per_example"]
    assert len(per["log_likelihood"]) == len(per["elbo"]) == len(per["pareto_k"]) == 30
    np.testing.assert_allclose(per["log_likelihood"], exact.numpy(), atol=1e-4)

    path = tmp_path / "sub" / "eval.json"
    write_json(result, path)
    assert json.loads(path.read_text(encoding="utf-8")) == result
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]  # no temp file left

    summary = format_summary(result)
    assert "K=50" in summary and "N=30" in summary and "nats" in summary
    assert f"{abs(result['log_likelihood']):.2f}" in summary


def test_evaluate_is_seeded_and_handles_small_k(tmp_path):
    images = sample_data(12)
    kwargs = dict(num_particles=5, batch_size=5, progress=False, seed=3)
    first = evaluate_log_likelihood(model, wide_poor_guide, images, **kwargs)
    second = evaluate_log_likelihood(model, wide_poor_guide, images, **kwargs)
    assert first["per_example"]["log_likelihood"] == second["per_example"]["log_likelihood"]
    assert first["log_likelihood"] > first["elbo"]
    # K < 21: k̂ unavailable -> NaN in memory, null in strict JSON, "n/a" in the summary.
    assert math.isnan(first["pareto_k"]["max"])
    path = tmp_path / "small_k.json"
    write_json(first, path)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded["pareto_k"]["max"] is None and loaded["per_example"]["pareto_k"][0] is None
    assert "k̂ max n/a" in format_summary(first)
