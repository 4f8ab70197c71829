"""RAM, DRAM and the RAM-table baselines: Pyro sites, conditioning, objectives, training, tasks."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO

from benchmarks.references.ram import plain_ram_loss
from generative.classifiers import (
    ConvClassifier,
    ConvConfig,
    FCClassifier,
    FCConfig,
    conv_output_side,
)
from generative.glimpse import clip_locations, glimpse_sensor
from generative.ram import (
    DRAM,
    RAM,
    RAM_CONFIGS,
    DRAMConfig,
    RAMConfig,
    dram_config,
    ram_config,
)
from guides.empty import EmptyGuide
from guides.ram import RAMGuide
from inference.reinforce import (
    RAMObjective,
    baseline_loss,
    reinforce_surrogate,
    site_baselines,
    site_log_probs,
)
from tasks.cli import build_parser, main
from tasks.families import find_model, load_trained
from tasks.options import RunOptions
from tasks.ram import FAMILY
from tasks.ram.data import classification_batches, load_classification_split
from tasks.ram.evaluate import evaluate_classifier
from tasks.ram.models import RAMOptions, classifier_config, default_config_name
from tasks.ram.pictures import retina_composite, write_attention_figure
from tasks.training import train


def _batch(config, batch: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, config.channels, config.height, config.width, generator=gen)
    return images, torch.randint(0, config.num_classes, (batch,), generator=gen)


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", sorted(RAM_CONFIGS))
def test_named_configs_roundtrip(name: str) -> None:
    config = ram_config(name)
    assert RAMConfig.from_dict(config.to_dict()) == config
    assert RAMConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_paper_configs() -> None:
    a, b = ram_config("mnist_28"), ram_config("translated_60")
    assert (a.num_glimpses, a.glimpse_size, a.scales, a.height) == (6, 8, 1, 28)  # Table 1a
    assert (b.num_glimpses, b.glimpse_size, b.scales, b.height) == (8, 12, 3, 60)  # Table 1b
    c = ram_config("cluttered_100")
    assert (c.num_glimpses, c.glimpse_size, c.scales, c.height) == (8, 12, 4, 100)  # Table 2b
    assert a.hidden_size == 256 and a.glimpse_hidden == 128 and a.glimpse_output == 256
    d = dram_config("cluttered_100")
    assert (d.read_size, d.num_glimpses, d.hidden_size, d.height) == (12, 8, 256, 100)
    # "roughly the same number of parameters" (sec. 4.1): RAM vs conv (8 filters) on 60x60
    ram_params = sum(p.numel() for p in RAM(b).parameters())
    conv_params = sum(
        p.numel() for p in ConvClassifier(ConvConfig(height=60, width=60)).parameters()
    )
    assert 0.9 < conv_params / ram_params < 1.1
    assert conv_output_side(60, 10, 5) == 11 and conv_output_side(100, 10, 5) == 19


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="RAMConfig.core"):
        RAMConfig(core="gru")
    with pytest.raises(ValueError, match="RAMConfig.first_location"):
        RAMConfig(first_location="corner")
    with pytest.raises(ValueError, match="unknown fields"):
        RAMConfig.from_dict({"glimpses": 3})
    with pytest.raises(ValueError, match="DRAMConfig.read_size"):
        DRAMConfig(read_size=0)
    with pytest.raises(ValueError, match="unknown RAM config"):
        ram_config("huge")
    ram = RAM(ram_config("small"))
    with pytest.raises(ValueError, match="images: expected shape"):
        ram.model(torch.zeros(2, 1, 30, 28))
    with pytest.raises(ValueError, match="labels: expected classes"):
        ram.model(torch.zeros(2, 1, 28, 28), torch.tensor([0, 10]))


# ----------------------------------------------------------------------------- RAM sites
@pytest.mark.parametrize("core", ["rnn", "lstm"])
def test_trace_exposes_location_and_label_sites(core: str) -> None:
    config = ram_config("small", core=core)
    ram = RAM(config)
    images, labels = _batch(config)
    trace = poutine.trace(ram.model).get_trace(images, labels)
    sample_sites = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]
    names = [f"l_{t}" for t in range(config.num_glimpses)]
    assert sample_sites == [*names, "y"]
    assert trace.nodes["y"]["is_observed"]
    assert torch.equal(trace.nodes["y"]["value"], labels)
    for name in names:
        site = trace.nodes[name]
        assert not site["is_observed"] and not site["fn"].has_rsample
        assert site["value"].shape == (6, 2) and not site["value"].requires_grad
        assert site["infer"]["baseline"]["baseline_value"].shape == (6,)
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]
    # l_0 ~ Uniform([-1, 1]^2) ("the first glimpse is always random"); the policy is bounded
    assert (trace.nodes["l_0"]["value"].abs() <= 1).all()
    assert site_log_probs(trace, names).shape == (config.num_glimpses, 6)


def test_condition_on_locations_reproduces_glimpses() -> None:
    config = ram_config("small", scales=2)
    ram = RAM(config)
    images, labels = _batch(config, batch=4)
    gen = torch.Generator().manual_seed(3)
    locs = {f"l_{t}": torch.rand(4, 2, generator=gen) * 2.6 - 1.3 for t in range(4)}
    conditioned = poutine.condition(ram.model, data=locs)
    out = conditioned(images, labels, record=True)
    again = conditioned(images, labels, record=True)
    assert torch.equal(out.logits, again.logits)
    for t in range(config.num_glimpses):
        assert torch.equal(out.locations[:, t], locs[f"l_{t}"])
        expected = glimpse_sensor(
            images, clip_locations(locs[f"l_{t}"]), size=config.glimpse_size, scales=2
        )
        assert torch.equal(out.glimpses[:, t], expected)


def test_deterministic_locations_follow_the_policy_mean() -> None:
    config = ram_config("small")
    ram = RAM(config)
    images, _ = _batch(config)
    out = ram.model(images, deterministic=True, record=True)
    assert torch.equal(out.locations[:, 0], torch.zeros(6, 2))  # the centre (mean of l_0)
    torch.manual_seed(5)
    assert torch.equal(ram.logits(images, deterministic=True), out.logits)
    # recompute the mean path by hand
    state = ram.initial_state(6, images)
    for t in range(config.num_glimpses):
        if t > 0:
            assert torch.allclose(out.locations[:, t], ram.location_mean(state[0]))
        state = ram.core(state, ram.glimpse_net(images, clip_locations(out.locations[:, t])))
    assert torch.allclose(ram.action_net(state[0]), out.logits)


def test_location_gradient_only_from_reinforce() -> None:
    """Hybrid loss: CE reaches glimpse/core/action nets, not the location net (sec. 3.2)."""
    config = ram_config("small")
    ram = RAM(config)
    images, labels = _batch(config)
    trace = poutine.trace(ram.model).get_trace(images, labels)
    ce = -site_log_probs(trace, ["y"])[0].mean()
    loc_grad = _grads(ce, list(ram.location_net.parameters()))
    assert all(torch.all(g == 0) for g in loc_grad)
    core_grad = _grads(ce, [ram.core_h.weight, ram.glimpse_net.glimpse_in.weight])
    assert all(g.abs().sum() > 0 for g in core_grad)
    names = [f"l_{t}" for t in range(config.num_glimpses)]
    reward = torch.ones(6)
    surrogate = reinforce_surrogate(site_log_probs(trace, names), reward)
    core_from_reinforce = _grads(surrogate, [ram.core_h.weight])
    assert torch.all(core_from_reinforce[0] == 0)  # the location net reads a detached state
    assert _grads(surrogate, [ram.location_net.linear.weight])[0].abs().sum() > 0


# ----------------------------------------------------------------------------- objectives
def test_tracegraph_objective_is_hybrid_form_with_log_likelihood_reward() -> None:
    """TraceGraph_ELBO (policy as guide, detached prior) has exactly the gradient
    ∇ log p(y|l,x) + Σ_t ∇ log π(l_t)(log p(y|l,x) − b_t) − baseline MSE gradient."""
    config = ram_config("small")
    ram = RAM(config)
    guide = RAMGuide(ram)
    images, labels = _batch(config, batch=8)
    params = list(ram.parameters())
    names = [f"l_{t}" for t in range(config.num_glimpses)]

    def manual(extra_prior_term: bool) -> list[torch.Tensor]:
        torch.manual_seed(1)
        trace = poutine.trace(ram.model).get_trace(images, labels)
        lp, b = site_log_probs(trace, names), site_baselines(trace, names)
        ll = site_log_probs(trace, ["y"])[0]
        loss = -ll.mean() + reinforce_surrogate(lp, ll, b) + baseline_loss(ll, b)
        if extra_prior_term:
            loss = loss - lp.sum(0).mean()
        return _grads(loss, params)

    for detach in (True, False):
        torch.manual_seed(1)
        loss, metrics = RAMObjective("tracegraph", detach_prior=detach)(
            ram, guide, (images, labels), 0
        )
        assert metrics["elbo"] == pytest.approx(-metrics["cross_entropy"], abs=1e-5)
        for a, b in zip(_grads(loss, params), manual(not detach), strict=True):
            assert torch.allclose(a, b, atol=1e-5)


def test_benchmark_plain_loss_matches_pyro() -> None:
    config = ram_config("mnist_28")
    ram = RAM(config)
    images, labels = _batch(config, batch=16)
    params = list(ram.parameters())
    torch.manual_seed(7)
    pyro_loss, pyro_metrics = RAMObjective("hybrid")(ram, RAMGuide(ram), (images, labels), 0)
    torch.manual_seed(7)
    plain_loss, plain_metrics = plain_ram_loss(ram, images, labels)
    assert torch.allclose(pyro_loss, plain_loss, atol=1e-5)
    assert pyro_metrics["accuracy"] == plain_metrics["accuracy"]
    for a, b in zip(_grads(pyro_loss, params), _grads(plain_loss, params), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- learning
def test_small_ram_learns_mnist_subset(real_data_dir) -> None:
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    ram = RAM(ram_config("small"))
    batches = classification_batches("mnist", 50, num_train=2000, data_dir=str(real_data_dir))
    optim = torch.optim.Adam(ram.parameters(), lr=3e-3)
    objective = RAMObjective("hybrid")
    with pyro.validation_enabled(False):
        for step in range(200):
            optim.zero_grad()
            loss, _ = objective(ram, None, batches.batch(step), step)
            loss.backward()
            optim.step()
    valid = load_classification_split(
        "mnist", "valid", num_examples=500, data_dir=str(real_data_dir)
    )
    result = evaluate_classifier(ram, valid.images, valid.labels, deterministic=True)
    assert result["error"] < 0.7  # chance is 0.9


@pytest.mark.parametrize("which", ["dram", "fc", "convnet"])
def test_deterministic_classifiers_train_step_decreases_loss(which: str) -> None:
    torch.manual_seed(0)
    if which == "dram":
        model = DRAM(dram_config("small"))
    elif which == "fc":
        model = FCClassifier(FCConfig(hidden=32))
    else:
        model = ConvClassifier(ConvConfig(height=28, width=28, hidden=32))
    images, labels = _batch(model.config, batch=32)
    guide = EmptyGuide()
    trace = poutine.trace(model.model).get_trace(images, labels)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"] == ["y"]
    before = torch.nn.functional.cross_entropy(model.logits(images), labels).item()
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    elbo = Trace_ELBO()
    losses = []
    for _ in range(15):
        optim.zero_grad()
        loss = elbo.differentiable_loss(model.model, guide.guide, images, labels) / 32
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(before, rel=1e-5)  # the loss is −log p(y|x) per example
    assert losses[-1] < losses[0] - 0.2


def test_dram_reads_with_draw_filterbanks() -> None:
    dram = DRAM(dram_config("small"))
    images, _ = _batch(dram.config, batch=3)
    out = dram.run(images, record=True)
    assert out.glimpses.shape == (3, 4, 1, 8, 8) and len(out.windows) == 4
    # the first window is W(0): the same for every image
    assert torch.allclose(out.windows[0].g_x, out.windows[0].g_x[:1].expand(3))


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_classifier_and_mc_average() -> None:
    ram = RAM(ram_config("small"))
    images, labels = _batch(ram.config, batch=20)
    det = evaluate_classifier(ram, images, labels, deterministic=True, batch_size=7)
    expected = (ram.logits(images, deterministic=True).argmax(-1) != labels).float().mean()
    assert det["error"] == pytest.approx(expected.item())
    assert det["num_examples"] == 20 and det["deterministic"]
    mc = evaluate_classifier(ram, images, labels, mc_samples=4)
    assert mc["mc_samples"] == 4 and 0 <= mc["error"] <= 1
    fc = FCClassifier(FCConfig(hidden=8))
    assert evaluate_classifier(fc, images, labels, mc_samples=4)["mc_samples"] == 1
    with pytest.raises(ValueError, match="mc_samples"):
        evaluate_classifier(ram, images, labels, mc_samples=0)


def test_retina_composite_centres_each_scale() -> None:
    glimpses = torch.stack([torch.full((1, 4, 4), float(k + 1)) for k in range(3)])
    out = retina_composite(glimpses)
    assert out.shape == (1, 16, 16)
    assert torch.all(out[:, 6:10, 6:10] == 1)  # the finest scale in the centre
    assert torch.all(out[:, 4:12, 4:6] == 2) and torch.all(out[:, :, :4] == 3)


def test_glimpse_path_figure(tmp_path) -> None:
    ram = RAM(ram_config("small", scales=2))
    images, labels = _batch(ram.config, batch=3)
    path = write_attention_figure(ram, images, labels, tmp_path / "paths")
    assert path.suffix == ".png" and path.stat().st_size > 1000
    dram = DRAM(dram_config("small"))
    path = write_attention_figure(dram, images, labels, tmp_path / "dram.png")
    assert path.stat().st_size > 1000


def test_run_classification_end_to_end(tmp_path, real_data_dir) -> None:
    run = RunOptions(
        config="small",
        dataset="mnist",
        out=str(tmp_path / "run"),
        steps=4,
        batch_size=20,
        validate_every=2,
        checkpoint_every=4,
        log_every=2,
        data_dir=str(real_data_dir),
        progress=False,
    )
    options = RAMOptions(num_train=300, num_valid=50, eval_examples=60, mc_samples=2)
    result = train(FAMILY, "ram", run, options)
    assert result["steps"] == 4 and result["test"]["num_examples"] == 60
    assert {"error", "error_mean_path", "error_mc"} <= set(result["test"])
    assert (tmp_path / "run" / "eval.json").is_file()
    assert (tmp_path / "run" / "glimpses.png").is_file()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    model, _, data = load_trained(ckpt)
    assert isinstance(model, RAM) and data.model == "ram"
    common = ["--data-dir", str(real_data_dir), "--seed", "0"]
    args = ["--num-examples", "30", "--batch-size", "50", "--json", str(tmp_path / "e.json")]
    assert main(["evaluate", str(ckpt), "--location-samples", "2", *args, *common]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["test"]["num_examples"] == 30
    assert main(["sample", str(ckpt), "--num-sequences", "2", *common]) == 0
    assert (tmp_path / "run" / "glimpses_mnist_test.png").is_file()
    # resuming continues from the stored step with the stored configuration
    resumed = replace(run, steps=6, resume=str(ckpt), pictures=False)
    assert train(FAMILY, "ram", resumed, options)["steps"] == 6


def test_register_train_parsers() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["train", "ram", "--objective", "tracegraph", "--dataset", "mnist_cluttered_60"]
    )
    assert args.objective == "tracegraph" and args.config is None
    assert find_model(args.model)[0] is FAMILY
    args = parser.parse_args(["train", "convnet", "--config", "conv_86"])
    assert args.dataset == "mnist_translated_60"
    assert default_config_name("ram", "mnist_cluttered_100") == "cluttered_100"
    assert default_config_name("convnet", "mnist_cluttered_100") == "conv_86"
    config = classifier_config("ram", "small", (1, 60, 60), location_std=0.2)
    assert config["height"] == 60 and config["location_std"] == 0.2
    with pytest.raises(ValueError, match="unknown fc config"):
        classifier_config("fc", "fc_1000", (1, 28, 28))


# ----------------------------------------------------------------------------- the family
def test_named_configs_are_typed_with_the_paper_values() -> None:
    from generative.classifiers import CLASSIFIER_CONFIGS
    from generative.ram import DRAM_CONFIGS

    assert all(isinstance(c, RAMConfig) for c in RAM_CONFIGS.values())
    assert all(isinstance(c, DRAMConfig) for c in DRAM_CONFIGS.values())
    assert all(isinstance(c, FCConfig) for c in CLASSIFIER_CONFIGS["fc"].values())
    assert all(isinstance(c, ConvConfig) for c in CLASSIFIER_CONFIGS["convnet"].values())
    assert RAM_CONFIGS["cluttered_100"] == RAMConfig(
        height=100, width=100, glimpse_size=12, scales=4, num_glimpses=8
    )
    assert DRAM_CONFIGS["cluttered_100_4"] == DRAMConfig(num_glimpses=4)
    fitted = classifier_config("convnet", "conv_86", (1, 100, 100))
    assert fitted == ConvConfig(height=100, width=100, hidden=86).to_dict()
    assert classifier_config("fc", "fc_64", (1, 60, 60))["hidden"] == 64
    with pytest.raises(FrozenInstanceError):  # the tables cannot be changed by accident
        RAM_CONFIGS["small"].num_glimpses = 9


@pytest.mark.parametrize(
    "model, option, value, message",
    [
        ("ram", "--steps", "0", "expected a number > 0"),
        ("ram", "--num-valid", "0", "expected a number > 0"),
        ("ram", "--eval-examples", "-1", "expected a number > 0"),
        ("ram", "--mc-samples", "0", "expected a number > 0"),
        ("ram", "--reinforce-weight", "-1", "expected a number >= 0"),
        ("ram", "--location-std", "0", "expected a number > 0"),
        ("ram", "--objective", "reinforce", "expected one of hybrid, tracegraph"),
        ("ram", "--dataset", "glyphs", "invalid choice"),
        ("dram", "--lr-decay", "0", "expected a number > 0"),
        ("fc", "--objective", "hybrid", "unrecognized arguments"),  # RAM's only
        ("convnet", "--mc-samples", "3", "unrecognized arguments"),
        ("fc", "--config", "conv_256", "invalid choice"),
    ],
)
def test_bad_train_values_are_refused_at_parse_time(model, option, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", model, option, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_options_are_checked_in_python_too() -> None:
    with pytest.raises(ValueError, match="--mc-samples"):
        RAMOptions(mc_samples=0)


def _fake_checkpoint(tmp_path, model: str) -> str:
    from inference.checkpoint import save_checkpoint

    config = classifier_config(model, default_config_name(model, "mnist"), (1, 28, 28))
    payload = {"model": model, "model_config": config, "model_state": {}, "guide_state": {}}
    path = tmp_path / f"{model}.pt"
    save_checkpoint({**payload, "step": 0, "data": {"dataset": "mnist"}}, path)
    return str(path)


def test_checkpoint_options_of_other_models_are_refused(tmp_path, capsys) -> None:
    fc = _fake_checkpoint(tmp_path, "fc")
    assert main(["evaluate", fc, "--location-samples", "3"]) == 1
    assert "--location-samples does not apply to `evaluate` of 'fc'" in capsys.readouterr().err
    assert main(["sample", fc]) == 1
    assert "`sample` is not available for 'fc'" in capsys.readouterr().err
    ram = _fake_checkpoint(tmp_path, "ram")
    assert main(["evaluate", ram, "--iwae-samples", "3"]) == 1
    assert "--iwae-samples does not apply to `evaluate` of 'ram'" in capsys.readouterr().err
    assert main(["sample", ram, "--num-samples", "3"]) == 1
    assert "--num-samples does not apply to `sample` of 'ram'" in capsys.readouterr().err


def _small_run(tmp_path, real_data_dir, model: str, *extra: str) -> list[str]:
    args = ["train", model, "--config", "small", "--out", str(tmp_path / model), "--steps", "2"]
    args += ["--batch-size", "10", "--num-train", "100", "--num-valid", "20"]
    args += ["--eval-examples", "20", "--no-progress", "--no-pictures", "--threads", "1"]
    return [*args, "--data-dir", str(real_data_dir), *extra]


def test_resume_with_other_settings_is_refused(tmp_path, real_data_dir, capsys) -> None:
    first = _small_run(tmp_path, real_data_dir, "ram", "--mc-samples", "2")
    assert main(first) == 0
    printed = capsys.readouterr().out
    assert "ram (small) on mnist: error" in printed and "2-path average" in printed
    ckpt = str(tmp_path / "ram" / "checkpoint.pt")
    resume = [*first, "--steps", "3", "--resume", ckpt]
    for extra, message in [
        (["--config", "mnist_28"], "was trained with --config small"),
        (["--dataset", "mnist_translated_60"], "was trained on --dataset mnist"),
        (["--objective", "tracegraph"], "objective settings"),
        (["--reinforce-weight", "0.5"], "objective settings"),
        (["--location-std", "0.3"], "--location-std"),
    ]:
        assert main([*resume, *extra]) == 1
        assert message in capsys.readouterr().err, extra
    assert main(resume) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 3


@pytest.mark.parametrize("model", ["ram", "fc"])
def test_checkpoints_written_before_the_run_record_resume(tmp_path, real_data_dir, model) -> None:
    """Older checkpoints stored the objective as a string and ``reinforce_weight`` beside it
    (every classifier); resuming one with the default options continues it."""
    from inference.checkpoint import load_checkpoint, save_checkpoint

    first = _small_run(tmp_path, real_data_dir, model)
    assert main(first) == 0
    ckpt = tmp_path / model / "checkpoint.pt"
    data = load_checkpoint(ckpt)
    assert data["objective"] == (
        {"mode": "hybrid", "reinforce_weight": 1.0}
        if model == "ram"
        else {"mode": "elbo (−log p(y|x))"}
    )
    data["objective"] = data["objective"]["mode"]
    data["reinforce_weight"] = 1.0
    for key in ("format", "format_version"):
        data.pop(key)
    save_checkpoint(data, ckpt)
    assert main([*first, "--steps", "3", "--resume", str(ckpt)]) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 3
