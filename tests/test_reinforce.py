"""REINFORCE helpers: unbiasedness on a toy policy with a known gradient, baselines, traces."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.distributions.util import scale_and_mask

from generative.distributions import ScoreNormal, ScoreUniform
from inference.reinforce import (
    DetachedPrior,
    RAMObjective,
    action_sites,
    baseline_loss,
    classification_reward,
    detach_distribution,
    reinforce_surrogate,
    site_baselines,
    site_log_probs,
)

SIGMA = 0.5
C1, C2 = 0.3, -0.4


def toy_policy(theta: torch.Tensor, batch: int, baseline_fn=None) -> None:
    """Two chained Gaussian actions: a1 ~ N(θ1, σ²), a2 ~ N(θ2 + a1/2, σ²) (a1 detached)."""
    with pyro.plate("data", batch):
        b1 = None if baseline_fn is None else baseline_fn(None)
        a1 = pyro.sample(
            "a_0",
            ScoreNormal(theta[0].expand(batch), SIGMA),
            infer={} if b1 is None else {"baseline": {"baseline_value": b1}},
        )
        b2 = None if baseline_fn is None else baseline_fn(a1)
        pyro.sample(
            "a_1",
            ScoreNormal(theta[1] + 0.5 * a1, SIGMA),
            infer={} if b2 is None else {"baseline": {"baseline_value": b2}},
        )


def toy_reward(trace) -> torch.Tensor:
    a1, a2 = trace.nodes["a_0"]["value"], trace.nodes["a_1"]["value"]
    return -((a1 - C1) ** 2) - (a2 - C2) ** 2


def analytic_gradient(theta: torch.Tensor) -> torch.Tensor:
    """∇θ E[R] for J = −(θ1 − c1)² − (θ2 + θ1/2 − c2)² − const."""
    t1, t2 = theta.tolist()
    m2 = t2 + 0.5 * t1 - C2
    return torch.tensor([-2 * (t1 - C1) - m2, -2 * m2])


def estimates(theta0: torch.Tensor, repeats: int, batch: int, baseline_fn=None) -> torch.Tensor:
    """``repeats`` independent batch estimates of ∇J (minus the surrogate's gradient)."""
    out = []
    for _ in range(repeats):
        theta = theta0.clone().requires_grad_(True)
        trace = poutine.trace(toy_policy).get_trace(theta, batch, baseline_fn)
        names = action_sites(trace)
        assert names == ["a_0", "a_1"]
        log_probs = site_log_probs(trace, names)
        assert log_probs.shape == (2, batch)
        baselines = site_baselines(trace, names)
        surrogate = reinforce_surrogate(log_probs, toy_reward(trace), baselines)
        (grad,) = torch.autograd.grad(surrogate, theta)
        out.append(-grad)
    return torch.stack(out)


@pytest.mark.parametrize(
    "baseline_fn",
    [
        None,
        lambda a_prev: torch.full((2000,), 3.0),  # a bad constant baseline: still unbiased
        # state-dependent (on the previous action, not the current one): still unbiased
        lambda a_prev: torch.zeros(2000) if a_prev is None else -2.0 * a_prev.detach() ** 2,
    ],
    ids=["no-baseline", "constant", "state-dependent"],
)
def test_reinforce_gradient_is_unbiased(baseline_fn) -> None:
    torch.manual_seed(0)
    theta0 = torch.tensor([0.8, 0.1])
    est = estimates(theta0, repeats=60, batch=2000, baseline_fn=baseline_fn)
    mean, se = est.mean(0), est.std(0) / est.shape[0] ** 0.5
    truth = analytic_gradient(theta0)
    assert ((mean - truth).abs() < 4 * se + 1e-4).all(), (mean, truth, se)
    assert (se < 0.1).all()  # the test has power


def test_good_baseline_reduces_variance() -> None:
    torch.manual_seed(1)
    theta0 = torch.tensor([0.8, 0.1])
    # E[R] at theta0 (a constant here, since the policy has no state): a near-optimal baseline
    m2 = 0.1 + 0.4 - C2
    expected_return = -((0.8 - C1) ** 2) - SIGMA**2 - m2**2 - 1.25 * SIGMA**2
    plain = estimates(theta0, repeats=30, batch=500)
    based = estimates(
        theta0, repeats=30, batch=500, baseline_fn=lambda _: torch.full((500,), expected_return)
    )
    assert (based.var(0) < 0.5 * plain.var(0)).all()


def test_baseline_loss_trains_only_the_baseline() -> None:
    reward_param = torch.tensor([1.0, 0.0, 1.0], requires_grad=True)
    b = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.3, 0.9]], requires_grad=True)
    loss = baseline_loss(reward_param * 1.0, b)
    expected = ((torch.tensor([1.0, 0.0, 1.0]) - b.detach()) ** 2).sum(0).mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert reward_param.grad is None or torch.all(reward_param.grad == 0)
    assert torch.allclose(b.grad, -2 * (torch.tensor([1.0, 0.0, 1.0]) - b.detach()) / 3)


def test_surrogate_detaches_reward_and_baseline() -> None:
    lp = torch.randn(3, 4, requires_grad=True)
    reward = torch.randn(4, requires_grad=True)
    b = torch.randn(3, 4, requires_grad=True)
    reinforce_surrogate(lp, reward, b).backward()
    assert reward.grad is None and b.grad is None
    assert torch.allclose(lp.grad, -(reward.detach() - b.detach()) / 4)
    # a list of per-step log-probs is the same as the stacked tensor
    assert torch.allclose(
        reinforce_surrogate(list(lp.detach()), reward, b),
        reinforce_surrogate(lp.detach(), reward, b),
    )


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="reward"):
        reinforce_surrogate(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="baselines"):
        reinforce_surrogate(torch.zeros(2, 3), torch.zeros(3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="log_probs"):
        reinforce_surrogate(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="sample site 'nope'"):
        trace = poutine.trace(toy_policy).get_trace(torch.zeros(2), 3)
        site_log_probs(trace, ["nope"])
    with pytest.raises(ValueError, match="mode"):
        RAMObjective("sgd")


class _TinyClassifier(torch.nn.Module):
    """One Gaussian 'location' feeding a linear softmax: enough to exercise RAMObjective."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.nn.Linear(2, 1)
        self.head = torch.nn.Linear(3, 3)
        self.baseline = torch.nn.Linear(2, 1)

    def _policy(self, x: torch.Tensor) -> torch.Tensor:
        b = self.baseline(x.detach()).squeeze(-1)
        return pyro.sample(
            "l_0",
            ScoreNormal(self.mean(x).squeeze(-1), 0.3),
            infer={"baseline": {"baseline_value": b}},
        )

    def model(self, x: torch.Tensor, y: torch.Tensor) -> None:
        pyro.module("tiny", self)
        with pyro.plate("data", x.shape[0]):
            loc = self._policy(x)
            logits = self.head(torch.cat([x, loc.unsqueeze(-1)], -1))
            pyro.sample("y", dist.Categorical(logits=logits), obs=y)

    def guide(self, x: torch.Tensor, y: torch.Tensor) -> None:
        pyro.module("tiny", self)
        with pyro.plate("data", x.shape[0]):
            self._policy(x)


@pytest.mark.parametrize("mode", ["hybrid", "tracegraph"])
def test_ram_objective_modes(mode: str) -> None:
    torch.manual_seed(0)
    net = _TinyClassifier()
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    loss, metrics = RAMObjective(mode)(net, net, (x, y), 0)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(metrics) >= {"accuracy", "reward", "cross_entropy"}
    loss.backward()
    for p in (net.mean.weight, net.head.weight, net.baseline.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_classification_reward() -> None:
    net = _TinyClassifier()
    x, y = torch.randn(8, 2), torch.randint(0, 3, (8,))
    trace = poutine.trace(net.model).get_trace(x, y)
    reward, pred = classification_reward(trace)
    logits = trace.nodes["y"]["fn"].logits
    assert torch.equal(pred, logits.argmax(-1))
    assert torch.equal(reward, (pred == y).float())


def test_score_distributions_survive_plates_and_to_event() -> None:
    mean = torch.zeros(5, 2, requires_grad=True)

    def program() -> None:
        with pyro.plate("data", 5):
            pyro.sample("a", ScoreNormal(mean, 0.3).to_event(1))
            pyro.sample("b", ScoreUniform(mean.detach() - 1, mean.detach() + 1).to_event(1))

    trace = poutine.trace(program).get_trace()
    for name in ("a", "b"):
        site = trace.nodes[name]
        assert not site["fn"].has_rsample and not site["value"].requires_grad
    lp = site_log_probs(trace, ["a"])
    (grad,) = torch.autograd.grad(lp.sum(), mean)
    value = trace.nodes["a"]["value"]
    assert torch.allclose(grad, (value - mean.detach()) / 0.09)  # the score of N(μ, σ²)


def test_detached_prior_keeps_values_and_drops_gradients() -> None:
    mean = torch.zeros(5, 2, requires_grad=True)
    fn = ScoreNormal(mean, 0.3).to_event(1)
    detached = detach_distribution(fn)
    x = torch.randn(5, 2)
    assert torch.equal(detached.log_prob(x), fn.log_prob(x).detach())
    assert not detached.log_prob(x).requires_grad and fn.log_prob(x).requires_grad
    net = _TinyClassifier()
    data = torch.randn(4, 2), torch.randint(0, 3, (4,))
    trace = poutine.trace(DetachedPrior()(net.model)).get_trace(*data)
    assert not site_log_probs(trace, ["l_0"]).requires_grad
    assert site_log_probs(trace, ["y"]).requires_grad  # observed sites are left alone


def test_site_log_probs_vectorised_normals_match_per_site_log_probs() -> None:
    """Normal sites of one structure are scored in one stacked call; the result (values and
    gradients) equals each site's own ``log_prob`` with its scale and mask, in site order, and a
    log-probability already stored on a site is reused as it is."""
    torch.manual_seed(0)
    theta = torch.randn(4, 6, 2, requires_grad=True)
    mask = torch.tensor([True, False, True, True, False, True])

    def program() -> None:
        with pyro.plate("data", 6):
            pyro.sample("n0", ScoreNormal(theta[0], 0.3).to_event(1))
            pyro.sample("u", ScoreUniform(-torch.ones(6, 2), torch.ones(6, 2)).to_event(1))
            pyro.sample("n1", ScoreNormal(theta[1], theta[2].exp()).to_event(1))
            with poutine.scale(scale=0.5), poutine.mask(mask=mask):
                pyro.sample("n2", ScoreNormal(theta[3], 0.7).to_event(1))
            pyro.sample("n3", ScoreNormal(theta[0].sum(-1), 0.2))  # other shape: alone

    trace = poutine.trace(program).get_trace()
    names = ["n0", "u", "n1", "n2", "n3"]
    expected = torch.stack(
        [
            scale_and_mask(
                trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]),
                trace.nodes[n]["scale"],
                trace.nodes[n]["mask"],
            )
            for n in names
        ]
    )
    found = site_log_probs(trace, names)
    assert torch.allclose(found, expected, atol=1e-6)
    (g_found,) = torch.autograd.grad(found.sum(), theta, retain_graph=True)
    (g_expected,) = torch.autograd.grad(expected.sum(), theta)
    assert torch.allclose(g_found, g_expected, atol=1e-5)
    trace.compute_log_prob()
    stored = torch.stack([trace.nodes[n]["log_prob"] for n in names])
    assert torch.allclose(site_log_probs(trace, names), stored, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 7, 16, 100])
def test_score_normal_samples_are_torch_normal_values(batch: int) -> None:
    """``ScoreNormal.sample()`` (``randn · scale + loc`` on detached parameters) draws exactly
    ``torch.normal(loc, scale)``'s values from the same random stream, without gradient."""
    loc = torch.randn(batch, 2, requires_grad=True)
    for scale in (torch.tensor(0.11), torch.rand(batch, 2) + 0.1):
        fn = ScoreNormal(loc, scale)
        torch.manual_seed(3)
        found = fn.sample()
        torch.manual_seed(3)
        with torch.no_grad():
            expected = torch.normal(loc, scale.expand(batch, 2))
        assert torch.equal(found, expected) and not found.requires_grad
        torch.manual_seed(3)
        assert torch.equal(fn.to_event(1).sample(), expected)


def test_score_distributions_build_the_same_shapes_and_densities_as_pyro() -> None:
    """The lean constructors (``ScoreNormal`` without ``broadcast_all``, ``to_event`` without
    ``Independent.__init__``) give ``dist.Normal(...).to_event(n)``'s shapes and log-densities;
    ``expand`` to the same batch shape is a no-op, to another shape a real expand."""
    loc = torch.randn(4, 3, 2)
    for n in (1, 2, 3):
        ours = ScoreNormal(loc, torch.tensor(0.3)).to_event(n)
        ref = dist.Normal(loc, 0.3).to_event(n)
        assert (ours.batch_shape, ours.event_shape) == (ref.batch_shape, ref.event_shape)
        x = ref.sample()
        assert torch.equal(ours.log_prob(x), ref.log_prob(x))
        assert not ours.has_rsample and ours.expand(ours.batch_shape) is ours
    wider = ScoreNormal(torch.zeros(3, 2), torch.tensor(1.0)).to_event(1).expand((5, 3))
    assert wider.batch_shape == (5, 3) and wider.event_shape == (2,) and not wider.has_rsample
    assert ScoreNormal(loc, torch.tensor(0.3)).to_event(0).batch_shape == loc.shape
    with pytest.raises(ValueError):
        ScoreNormal(torch.zeros(3), torch.tensor(1.0)).to_event(2)
    uniform = ScoreUniform(-torch.ones(4, 2), torch.ones(4, 2)).to_event(1)
    assert uniform.batch_shape == (4,) and uniform.event_shape == (2,)
    assert torch.equal(
        uniform.log_prob(torch.zeros(4, 2)),
        dist.Uniform(-torch.ones(4, 2), torch.ones(4, 2)).to_event(1).log_prob(torch.zeros(4, 2)),
    )
