"""Gradient-estimator diagnostics (inference/gradients.py)."""

from __future__ import annotations

import pytest
import torch

from inference.gradients import gradient_moments


def test_moments_of_a_known_gradient():
    """loss = a·ε₁ + Σ b·ε₂ with ε ~ N(μ, σ²): the gradient is ε, so its mean and variance are
    known exactly."""
    torch.manual_seed(0)
    a = torch.zeros(3, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    mu_a, sd_a = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, 2.0])
    mu_b, sd_b = torch.tensor([3.0, 0.0]), torch.tensor([0.1, 0.3])

    def loss():
        return (a * (mu_a + sd_a * torch.randn(3))).sum() + (
            b * (mu_b + sd_b * torch.randn(2))
        ).sum()

    groups = {"a": lambda n: n == "a", "all": lambda n: True}
    out = gradient_moments(loss, [("a", a), ("b", b)], groups, draws=4000)
    var_a, var_all = sd_a.square().sum().item(), (sd_a.square().sum() + sd_b.square().sum()).item()
    assert out.total_variance["a"] == pytest.approx(var_a, rel=0.06)
    assert out.total_variance["all"] == pytest.approx(var_all, rel=0.06)
    assert out.mean_norm_sq["a"] == pytest.approx(mu_a.square().sum().item(), rel=0.05)
    assert out.snr["all"] == pytest.approx(
        (mu_a.square().sum() + mu_b.square().sum()).item() / var_all, rel=0.1
    )
    assert a.grad is None and b.grad is None


def test_deterministic_gradient_has_zero_variance_and_unused_parameters_count_as_zero():
    w = torch.ones(2, requires_grad=True)
    unused = torch.ones(1, requires_grad=True)
    out = gradient_moments(
        lambda: (3 * w).sum(),
        [("w", w), ("u", unused)],
        {"w": lambda n: n == "w", "u": lambda n: n == "u"},
        5,
    )
    assert out.total_variance == {"w": 0.0, "u": 0.0}
    assert out.mean_norm_sq["w"] == pytest.approx(18.0)
    assert out.snr["w"] == float("inf")


def test_bad_arguments_raise():
    w = torch.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match="draws must be >= 2"):
        gradient_moments(lambda: w.sum(), [("w", w)], {"w": lambda n: True}, 1)
    with pytest.raises(ValueError, match="group 'stop' matches no parameter"):
        gradient_moments(lambda: w.sum(), [("w", w)], {"stop": lambda n: n.startswith("x")}, 3)
