"""DRAW model and guide as Pyro programs (Eqs. 1–16)."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.util import site_is_subsample

from benchmarks.references.draw import plain_draw_loss
from generative.draw import DRAW_CONFIGS, DrawConfig, DrawModel, draw_config
from guides.draw import DrawGuide

TINY = DrawConfig(
    height=12,
    width=10,
    steps=4,
    encoder_size=16,
    decoder_size=16,
    z_size=3,
    read_size=2,
    write_size=3,
)


def _pair(config=TINY, seed=0):
    torch.manual_seed(seed)
    model = DrawModel(config)
    return model, DrawGuide(model)


def _data(config=TINY, batch=5, seed=1):
    """Binary images of one random filled rectangle each."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, config.channels, config.height, config.width)
    for img in x:
        r0, c0 = (torch.randint(0, s // 2, (1,), generator=g).item() for s in img.shape[1:])
        r1, c1 = r0 + config.height // 3, c0 + config.width // 3
        img[:, r0:r1, c0:c1] = 1.0
    return x


def test_table3_configurations():
    mnist = DRAW_CONFIGS["mnist"]
    assert (mnist.steps, mnist.decoder_size, mnist.z_size, mnist.read_size, mnist.write_size) == (
        64,
        256,
        100,
        2,
        5,
    )
    svhn = DRAW_CONFIGS["svhn"]
    assert (svhn.steps, svhn.decoder_size, svhn.z_size, svhn.read_size, svhn.channels) == (
        32,
        800,
        100,
        12,
        3,
    )
    cifar = DRAW_CONFIGS["cifar"]
    assert (cifar.steps, cifar.decoder_size, cifar.z_size, cifar.write_size) == (64, 400, 200, 5)
    assert DRAW_CONFIGS["mnist_no_attention"].read_size is None
    with pytest.raises(ValueError, match="unknown DRAW config"):
        draw_config("nope")


def test_every_latent_is_a_named_site_in_model_and_guide():
    model, guide = _pair()
    x = _data()
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    latents = [f"z_{t}" for t in range(TINY.steps)]

    def samples(trace):
        return {
            n: s
            for n, s in trace.nodes.items()
            if s["type"] == "sample" and not site_is_subsample(s)
        }

    assert list(samples(guide_trace)) == latents
    model_sites = samples(model_trace)
    assert list(model_sites) == [*latents, "x"]
    assert model_sites["x"]["is_observed"]
    for name in latents:
        assert model_sites[name]["value"] is guide_trace.nodes[name]["value"]
        assert model_sites[name]["value"].shape == (5, TINY.z_size)
        assert model_sites[name]["fn"].event_dim == 1
        assert [f.name for f in model_sites[name]["cond_indep_stack"]] == ["data"]


def test_pyro_loss_equals_direct_computation_of_eq_12():
    # Same noise: TraceMeanField_ELBO over the model/guide == BCE + analytic KL (Eqs. 9, 11).
    model, guide = _pair(draw_config("small"))
    x = _data(draw_config("small"), batch=4)
    torch.manual_seed(5)
    pyro_loss = TraceMeanField_ELBO().differentiable_loss(model.model, guide.guide, x)
    torch.manual_seed(5)
    direct = plain_draw_loss(model, guide, x)
    torch.testing.assert_close(pyro_loss, direct)


def test_floored_filterbank_leaves_the_loss_and_gradients_unchanged(monkeypatch):
    # The speed floor of generative.attention.filterbank, against Eqs. 25–26 with no floor, on
    # the Table 3 network (28×28, read 2×2, write 5×5) at its initialisation, where the outer
    # filters put float32 subnormals into the read and write.
    import generative.attention as attention
    from tests.test_attention import _filterbank_eqs_25_26

    config = draw_config("mnist", steps=8)
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(3)) < 0.2).float()

    def loss_and_grads():
        model, guide = _pair(config)
        torch.manual_seed(5)
        loss = plain_draw_loss(model, guide, x)
        params = list(model.parameters()) + list(guide.parameters())
        return loss, torch.autograd.grad(loss, params)

    fast = loss_and_grads()
    monkeypatch.setattr(attention, "filterbank", _filterbank_eqs_25_26)
    exact = loss_and_grads()
    torch.testing.assert_close(fast[0], exact[0], rtol=1e-6, atol=0)
    for g_fast, g_exact in zip(fast[1], exact[1], strict=True):
        torch.testing.assert_close(g_fast, g_exact, rtol=1e-4, atol=1e-6)


def test_decoder_runs_once_per_step_and_memo_changes_nothing():
    model, guide = _pair()
    x = _data()
    params = list(model.parameters()) + list(guide.parameters())
    calls = []
    hook = model.writer.register_forward_hook(lambda *a: calls.append(1))  # once per step

    def loss_and_grads():
        torch.manual_seed(3)
        loss = Trace_ELBO().differentiable_loss(model.model, guide.guide, x)
        return loss, torch.autograd.grad(loss, params)

    with_memo, grads = loss_and_grads()
    assert len(calls) == TINY.steps  # the replayed model reused the guide's decoder states
    calls.clear()
    model.memo.hits = lambda *a: False  # disable the cache
    without, grads_plain = loss_and_grads()
    assert len(calls) == 2 * TINY.steps
    hook.remove()
    torch.testing.assert_close(with_memo, without)
    for a, b in zip(grads, grads_plain, strict=True):
        torch.testing.assert_close(a, b)


def test_memo_is_not_used_after_parameters_change_or_with_new_values():
    model, guide = _pair()
    x = _data()
    trace = poutine.trace(guide.guide).get_trace(x)
    z0 = trace.nodes["z_0"]["value"]
    versions = model.param_versions()
    assert model.memo.hits(0, versions, z0)
    assert not model.memo.hits(0, versions, z0.clone())  # another tensor
    with torch.no_grad():
        model.canvas0.add_(1.0)  # an optimiser step bumps the version counters
    assert not model.memo.hits(0, model.param_versions(), z0)


def test_memo_recorded_without_grad_is_not_used_with_grad():
    model, guide = _pair()
    x = _data()
    with torch.no_grad():
        trace = poutine.trace(guide.guide).get_trace(x)
    z0 = trace.nodes["z_0"]["value"]
    assert not model.memo.hits(0, model.param_versions(), z0)
    with torch.no_grad():
        assert model.memo.hits(0, model.param_versions(), z0)
    assert len(model.memo._values) == 1  # without gradients only the latest state is kept


@pytest.mark.parametrize("grad", [True, False])
def test_partial_memo_hit_rebuilds_the_prefix_state(grad):
    # The model replays the guide's z for the first steps only (e.g. conditioning later steps):
    # its log-likelihood must equal the one computed without the memo.
    model, guide = _pair()
    x = _data()
    with torch.set_grad_enabled(grad):
        trace = poutine.trace(guide.guide).get_trace(x)
        values = {f"z_{t}": trace.nodes[f"z_{t}"]["value"] for t in range(2)}
        values["z_2"] = torch.zeros(5, TINY.z_size)
        values["z_3"] = torch.ones(5, TINY.z_size)
        conditioned = poutine.condition(model.model, data=values)
        with_memo = poutine.trace(conditioned).get_trace(x).log_prob_sum()
        expected = poutine.trace(conditioned).get_trace(x).log_prob_sum()  # memo cleared
    torch.testing.assert_close(with_memo, expected)


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        DrawConfig(
            height=9,
            width=9,
            channels=3,
            steps=3,
            encoder_size=8,
            decoder_size=8,
            z_size=2,
            read_size=None,
            write_size=None,
        ),
    ],
)
def test_generation_records_canvases_and_write_windows(config):
    model, _ = _pair(config)
    out = model.generate(4)
    assert out["canvases"].shape == (4, config.steps, config.channels, config.height, config.width)
    assert ((out["canvases"] >= 0) & (out["canvases"] <= 1)).all()
    if config.write_size is None:
        assert "windows" not in out
    else:
        assert out["windows"].shape == (4, config.steps, 5)


def test_fresh_noise_at_every_step():
    # A known port bug reuses one noise sample for all steps; every z_t must differ.
    model, _ = _pair()
    trace = poutine.trace(model.model).get_trace(batch_size=3)
    zs = [trace.nodes[f"z_{t}"]["value"] for t in range(TINY.steps)]
    assert all(not torch.equal(zs[0], z) for z in zs[1:])


@pytest.mark.parametrize("attention", [True, False])
def test_a_tiny_batch_overfits(attention):
    pyro.enable_validation(False)
    size = 3 if attention else None
    config = DrawConfig(
        height=12,
        width=10,
        steps=6,
        encoder_size=32,
        decoder_size=32,
        z_size=4,
        read_size=size,
        write_size=size,
    )
    model, guide = _pair(config)
    x = _data(config, batch=8, seed=4)
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=3e-3)
    elbo = TraceMeanField_ELBO()
    losses = []
    for _ in range(120):
        optim.zero_grad()
        loss = elbo.differentiable_loss(model.model, guide.guide, x) / len(x)
        loss.backward()
        optim.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)


def test_works_with_pyro_svi_and_its_param_store():
    pyro.clear_param_store()
    pyro.enable_validation(False)
    model, guide = _pair()
    x = _data(batch=6)
    svi = pyro.infer.SVI(
        model.model, guide.guide, pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO()
    )
    losses = [svi.step(x) for _ in range(30)]
    assert losses[-1] < losses[0]
    names = set(pyro.get_param_store().keys())
    assert any(n.startswith("draw_model$$$") for n in names)
    assert any(n.startswith("draw_guide$$$") for n in names)
    assert not any(n.startswith("draw_guide$$$draw_model") for n in names)
