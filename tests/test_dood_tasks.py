"""The DooD/AIR user tasks (tasks/dood.py): training, checkpoints, evaluation, pictures, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyro
import pytest
import torch

import tasks.cli
import tasks.models
from generative.air import AirConfig
from generative.dood import DooDConfig
from inference.checkpoint import save_checkpoint
from inference.trainer import SVITrainer, TrainConfig
from tasks.data import DataError
from tasks.dood import (
    CHECKPOINT_COMMANDS,
    MODELS,
    DooDTrainJob,
    build_dood,
    complete_drawings,
    load_dood_checkpoint,
    load_dood_images,
    model_config,
    nvil_lr_groups,
    partial_images,
    run_dood_training,
    stop_objective,
    stroke_count_summary,
    validation_metrics,
)

SIZE = 16
DOOD_TINY = dict(
    height=SIZE,
    width=SIZE,
    max_strokes=3,
    glimpse_size=8,
    hidden_size=16,
    feature_size=16,
    mlp_hidden=16,
    layout_components=2,
    stroke_components=2,
    render_points=20,
    eval_render_points=20,
)
AIR_TINY = dict(
    height=SIZE,
    width=SIZE,
    max_steps=3,
    z_what_size=4,
    glimpse_size=8,
    feature_size=16,
    hidden_size=16,
    mlp_hidden=16,
)
NUM_VALID = 12


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny DooD trained for 3 steps on 16×16 glyphs, with evaluation and pictures."""
    out = tmp_path_factory.mktemp("dood_run")
    job = DooDTrainJob(
        model="dood",
        config="small",
        dataset="glyphs",
        out=str(out),
        config_overrides=DOOD_TINY,
        num_train=32,
        num_valid=NUM_VALID,
        eval_examples=8,
        iwae_samples=3,
        progress=False,
    )
    config = TrainConfig(
        steps=3, batch_size=8, lr=1e-4, seed=1, validate_every=2, checkpoint_every=2, log_every=1
    )
    with pyro.validation_enabled(False):
        result = run_dood_training(job, config)
    return out, result


def test_training_writes_checkpoint_eval_and_pictures(trained) -> None:
    out, result = trained
    for name in ("checkpoint.pt", "metrics.jsonl", "eval.json"):
        assert (out / name).is_file(), name
    for name in ("reconstruction", "samples", "generation", "completion"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
    saved = json.loads((out / "eval.json").read_text())
    assert saved["steps"] == 3 and saved["iwae_samples"] == 3 and saved["num_examples"] == 8
    assert saved["dataset"] == "glyphs" and saved["binarization"] == "none"
    assert math.isfinite(saved["log_likelihood"]) and math.isfinite(saved["elbo"])
    counts = saved["stroke_counts"]
    assert sum(counts["histogram"]) == 8 and len(counts["histogram"]) == 4  # counts 0 … T=3
    assert 0.0 <= counts["accuracy"] <= 1.0  # glyphs: compared with the true stroke counts
    assert saved["learning_rates"] == {
        "base": 1e-4,
        "guide.pres_net.": 1e-3,
        "guide.baseline.": 1e-3,
    }
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "valid_elbo" in r] == [2, 3]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


def test_checkpoint_round_trip_gives_identical_elbo(trained, monkeypatch) -> None:
    out, result = trained
    if "tasks.dood" not in tasks.models.FAMILY_MODULES:  # until the lead wires it in
        monkeypatch.setattr(
            tasks.models, "FAMILY_MODULES", (*tasks.models.FAMILY_MODULES, "tasks.dood")
        )
    model, guide, ckpt = tasks.models.load_trained(out / "checkpoint.pt")
    assert ckpt["model"] == "dood" and ckpt["model_config"]["height"] == SIZE
    valid = load_dood_images("glyphs", "valid", size=SIZE, num_examples=NUM_VALID, seed=1)
    again = validation_metrics(model, guide, valid.images, seed=1)
    assert again["valid_elbo"] == pytest.approx(result["valid_elbo"], rel=1e-6)
    assert again["valid_num_strokes"] == result["valid_num_strokes"]
    model2, guide2, _ = load_dood_checkpoint(out / "checkpoint.pt")
    assert validation_metrics(model2, guide2, valid.images, seed=1) == again


def test_checkpoint_commands_write_pictures_and_json(trained, tmp_path) -> None:
    out, _ = trained
    ckpt = str(out / "checkpoint.pt")
    parser = tasks.cli.build_parser()  # generic checkpoint options (+ this family's extras)
    extras = {"complete": ["--partial-region", "strokes"]} if _wired() else {}
    for command, extra in [
        ("reconstruct", ["--num-examples", "3"]),
        ("sample", ["--num-samples", "4", "--temperature", "1.0", "0.3", "--num-sequences", "2"]),
        ("complete", ["--num-examples", "2", "--num-samples", "3", *extras.get("complete", [])]),
        ("evaluate", ["--num-examples", "4", "--iwae-samples", "2", "--json", "ev.json"]),
    ]:
        args = parser.parse_args([command, ckpt, "--out", str(tmp_path), "--no-progress", *extra])
        if command == "evaluate":
            args.json = str(tmp_path / "ev.json")
        CHECKPOINT_COMMANDS[command]["dood"](args)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "completion_glyphs_test_T1.png",
        "generation.png",
        "reconstruction_glyphs_test.png",
        "samples.png",
    ]
    result = json.loads((tmp_path / "ev.json").read_text())
    assert result["num_examples"] == 4 and result["trained_on"] == "glyphs"
    assert "accuracy" in result["stroke_counts"]


def _wired() -> bool:
    return "tasks.dood" in tasks.cli.CLI_FAMILIES


def test_air_checkpoint_commands(tmp_path) -> None:
    torch.manual_seed(0)
    config = AirConfig(**AIR_TINY, difference=True).to_dict()
    model, guide = MODELS["difference-air"].build(config)
    path = save_checkpoint(
        {
            "model": "difference-air",
            "model_config": config,
            "model_state": model.state_dict(),
            "guide_state": guide.state_dict(),
            "step": 0,
            "data": {"dataset": "glyphs"},
        },
        tmp_path / "air.pt",
    )
    parser = tasks.cli.build_parser()
    for command, extra in [("reconstruct", ["--num-examples", "2"]), ("sample", [])]:
        args = parser.parse_args([command, str(path), "--num-samples", "3", *extra])
        CHECKPOINT_COMMANDS[command]["difference-air"](args)
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "reconstruction_glyphs_test.png",
        "samples.png",
        "generation.png",
    }
    args = parser.parse_args(["sample", str(path), "--temperature", "0.5"])
    with pytest.raises(ValueError, match="no sampling temperature"):
        CHECKPOINT_COMMANDS["sample"]["difference-air"](args)
    with pytest.raises(ValueError, match="difference=True, expected False"):
        MODELS["air"].build(config)


def test_cli_train_evaluate_complete(tmp_path, monkeypatch, capsys) -> None:
    if not _wired():  # until the lead wires the family into the CLI and the registry
        monkeypatch.setattr(tasks.cli, "CLI_FAMILIES", (*tasks.cli.CLI_FAMILIES, "tasks.dood"))
        monkeypatch.setattr(
            tasks.models, "FAMILY_MODULES", (*tasks.models.FAMILY_MODULES, "tasks.dood")
        )
    out = tmp_path / "run"
    code = tasks.cli.main(
        [
            "train",
            "dood",
            "--config",
            "small",
            "--image-size",
            "16",
            "--dataset",
            "glyphs",
            "--stop",
            "enum",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--num-train",
            "8",
            "--num-valid",
            "4",
            "--eval-examples",
            "3",
            "--iwae-samples",
            "2",
            "--no-pictures",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "eval.json").read_text())
    assert saved["stop"] == "enum" and saved["model_config"]["height"] == 16
    assert saved["learning_rates"] == {"base": 1e-4, "guide.pres_net.": 1e-3}  # no baseline
    ckpt = str(out / "checkpoint.pt")
    assert tasks.cli.main(["evaluate", ckpt, "--num-examples", "2", "--iwae-samples", "2"]) == 0
    assert "inferred strokes" in capsys.readouterr().out
    args = ["--num-examples", "2", "--num-samples", "2", "--partial-region", "top"]
    assert tasks.cli.main(["complete", ckpt, *args, "--no-progress"]) == 0
    assert (out / "completion_glyphs_test_T1.png").is_file()
    assert tasks.cli.main(["train", "dood", "--config", "dood_dR", "--dataset", "kmnist"]) == 1
    assert "kmnist" in capsys.readouterr().err  # not available: a clear error, exit code 1


def test_model_config_rules() -> None:
    cfg = model_config("dood", "dood_EG", dataset="omniglot", stop="enum", beta=2.0)
    assert cfg["execution_guidance"] is False and cfg["stop_mode"] == "enum"
    assert cfg["beta"] == 2.0 and cfg["stop_bias_init"] == 8.0  # appendix C, Omniglot
    assert cfg["height"] == 50  # appendix A
    air = model_config("air", dataset="omniglot")
    assert air["likelihood"] == "normal" and air["beta"] == 5.0 and not air["difference"]
    assert model_config("difference-air", "small", image_size=20)["difference"] is True
    assert model_config("air", dataset="mnist")["likelihood"] == "laplace"
    with pytest.raises(ValueError, match="unknown dood config"):
        model_config("dood", "difference_air")
    with pytest.raises(ValueError, match="stop must be"):
        model_config("dood", stop="reinforce")
    with pytest.raises(ValueError, match="unknown DooD-family model"):
        model_config("draw")


def test_learning_rate_groups_follow_appendix_c(tmp_path) -> None:
    model, guide = build_dood(DooDConfig(**DOOD_TINY).to_dict())
    objective = stop_objective(model.config.to_dict())
    config = TrainConfig(steps=1, batch_size=2, lr=1e-4, lr_groups=nvil_lr_groups(guide))
    batches = type(
        "B", (), {"batch_size": 2, "batch": lambda self, s: (torch.zeros(2, 1, 16, 16),)}
    )
    trainer = SVITrainer(
        model,
        guide,
        batches(),
        config,
        out_dir=tmp_path,
        checkpoint_extra={},
        progress=False,
        objective=objective,
    )
    fast = {id(p) for p in [*guide.pres_net.parameters(), *guide.baseline.parameters()]}
    for group in trainer.optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids == fast if group["lr"] == 1e-3 else not (ids & fast)


def test_stroke_count_summary() -> None:
    counts = torch.tensor([0, 1, 2, 2, 3])
    truth = torch.tensor([1, 1, 2, 4, 3])
    out = stroke_count_summary(counts, 3, truth)
    assert out["histogram"] == [1, 1, 2, 1] and out["mean"] == pytest.approx(1.6)
    assert out["accuracy"] == pytest.approx(0.6) and out["mean_abs_error"] == pytest.approx(0.6)
    confusion = torch.tensor(out["confusion_true_by_inferred"])
    assert confusion.shape == (5, 4) and confusion.sum() == 5
    assert confusion[4, 2] == 1 and confusion[1, 0] == 1 and confusion.trace() == 3
    with pytest.raises(ValueError, match="truth"):
        stroke_count_summary(counts, 3, truth[:2])


def test_glyph_splits_are_grey_and_partial_drawings() -> None:
    test = load_dood_images("glyphs", "test", size=SIZE, num_examples=6, seed=3)
    assert test.binarization == "none" and test.images.shape == (6, 1, SIZE, SIZE)
    grey = (test.images > 0.05) & (test.images < 0.95)
    assert grey.any()  # not binarised (load_images("glyphs") binarises valid/test)
    train = load_dood_images("glyphs", "train", size=SIZE, num_examples=6, seed=3)
    assert train.binarization == "none"
    part, region = partial_images(test, None, 3)
    assert region == "strokes" and part.shape[1:] == (1, SIZE, SIZE)
    rows = (test.extras["num_strokes"] >= 2).nonzero().squeeze(-1)[:3]
    assert (part <= test.images[rows] + 1e-5).all()  # fewer strokes, less ink (Eq. 14)
    assert (part.sum((1, 2, 3)) < test.images[rows].sum((1, 2, 3))).all()
    top, _ = partial_images(test, "top", 2)
    assert (top[..., SIZE // 2 :, :] == 0).all()
    assert torch.equal(top[..., : SIZE // 2, :], test.images[:2, ..., : SIZE // 2, :])
    with pytest.raises(ValueError, match="partial region"):
        partial_images(test, "middle", 2)


def test_completion_keeps_the_partial_drawing() -> None:
    torch.manual_seed(0)
    model, guide = build_dood(DooDConfig(**DOOD_TINY).to_dict())
    model.eval()
    guide.eval()
    partial = load_dood_images("glyphs", "test", size=SIZE, num_examples=3).images
    out = complete_drawings(model, guide, partial, 4, temperature=0.5)
    assert out["images"].shape == (3, 4, 1, SIZE, SIZE) and out["num_added"].shape == (3, 4)
    # Eq. 14 with the partial figure as canvas-so-far: new ink only adds
    assert (out["images"] >= partial.clamp(max=1 - 1e-4)[:, None] - 1e-5).all()
    untouched = out["num_added"] == 0
    diff = (out["images"] - partial[:, None]).abs().amax((2, 3, 4))
    assert (diff[untouched] < 1e-3).all()
    assert ((out["num_given"][:, None] + out["num_added"]) <= 3).all()
    with torch.no_grad():  # a stop prior that always continues fills every remaining step
        model.pres_net.init_output(30.0)
    out = complete_drawings(model, guide, partial, 2)
    assert torch.equal(out["num_added"], (3 - out["num_given"])[:, None].expand(3, 2))


def test_file_datasets_load_at_the_model_size(real_data_dir) -> None:
    for name in ("mnist", "omniglot50"):
        data = load_dood_images(name, "test", size=20, num_examples=3, data_dir=real_data_dir)
        assert data.images.shape == (3, 1, 20, 20) and data.binarization == "none"
        assert 0.0 < data.images.mean() < 0.5  # ink = 1 on a dark background (appendix A)
    with pytest.raises(DataError, match="not available"):
        load_dood_images("kmnist", "test", size=20, data_dir=real_data_dir)
    with pytest.raises(DataError, match="unknown DooD dataset"):
        load_dood_images("svhn", "test")
