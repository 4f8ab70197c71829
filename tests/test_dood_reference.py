"""The plain-PyTorch DooD NVIL loss of the benchmark (:mod:`benchmarks.references.dood`) equals
:class:`inference.nvil.NVILObjective` over the Pyro model and guide, in loss, gradients and
running statistics."""

from __future__ import annotations

import pyro
import pytest
import torch

from benchmarks.references.dood import PlainNVILStatistics, plain_nvil_loss
from generative.dood import DooD
from generative.dood_config import DooDConfig
from guides.dood import DooDGuide
from inference.nvil import NVILObjective
from tests.tiny import tiny_dood


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    pairs = zip(grads, params, strict=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in pairs])


@pytest.mark.parametrize(
    "beta_mode, stop_ink_ratio, warmup_steps",
    [("signal", True, 0), ("kl", True, 0), ("signal", False, 0), ("signal", True, 5)],
)
def test_plain_nvil_loss_matches_the_objective(beta_mode, stop_ink_ratio, warmup_steps) -> None:
    torch.manual_seed(0)
    pyro.clear_param_store()
    config = DooDConfig(**tiny_dood(20, hidden=16, render_points=10), stop_ink_ratio=stop_ink_ratio)
    model = DooD(config)
    guide = DooDGuide(model)
    # a guide that stops early for some examples, so that alive masks and counts vary
    with torch.no_grad():
        guide.pres_net.output.bias.fill_(0.5)
    x = torch.rand(8, 1, 20, 20) * (torch.rand(8, 1, 1, 1) > 0.2)
    objective = NVILObjective(
        4.0, max_steps=config.max_strokes, beta_mode=beta_mode, warmup_steps=warmup_steps
    )
    stats = PlainNVILStatistics(objective)
    params = [*model.parameters(), *guide.parameters()]
    with pyro.validation_enabled(False):
        for _ in range(3):  # the first batch initialises the statistics, later ones update them
            torch.manual_seed(11)
            loss_pyro, _ = objective(model, guide, (x,), 0)
            torch.manual_seed(11)
            loss_plain = plain_nvil_loss(model, guide, x, stats)
            g_pyro, g_plain = _grads(loss_pyro, params), _grads(loss_plain, params)
            assert torch.allclose(loss_pyro, loss_plain, rtol=1e-6, atol=1e-4)
            assert ((g_pyro - g_plain).norm() / g_plain.norm()).item() < 1e-5
            assert torch.allclose(objective.signal_mean, stats.mean, rtol=1e-6, atol=1e-5)
            assert torch.allclose(objective.signal_var, stats.var, rtol=1e-6, atol=1e-5)
            assert torch.equal(objective.updates, stats.updates)
    if warmup_steps == 0:
        assert (stats.updates == 3).all()
