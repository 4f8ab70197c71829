"""The ``pyro-draw`` command line on the embedded glyphs dataset."""

import json

import pytest
import torch

from inference.checkpoint import save_checkpoint
from tasks.cli import build_parser, main


@pytest.mark.parametrize(
    "command", [[], ["train"], ["train", "draw"], ["evaluate"], ["sample"], ["reconstruct"]]
)
def test_help_explains_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: pyro-draw" in text
    if command == ["train"]:
        assert "draw" in text and "<model> --help" in text
    if command == ["train", "draw"]:
        assert "--resume" in text and "--elbo" in text and "--device" in text


def test_train_without_a_model_name_trains_draw():
    from tasks.cli import _default_train_model

    assert _default_train_model(["train"]) == ["train", "draw"]
    assert _default_train_model(["train", "--steps", "3"]) == ["train", "draw", "--steps", "3"]
    assert _default_train_model(["train", "--help"]) == ["train", "--help"]
    assert _default_train_model(["train", "draw", "--steps", "3"])[1] == "draw"


def test_command_without_a_handler_for_the_model_is_refused(tmp_path, capsys):
    from generative.draw import DRAW_CONFIGS

    path = save_checkpoint(
        {
            "model": "draw",
            "model_config": DRAW_CONFIGS["small"].to_dict(),
            "model_state": {},
            "guide_state": {},
            "step": 0,
        },
        tmp_path / "draw.pt",
    )
    assert main(["interpolate", str(path), "--no-progress"]) == 1
    assert "`interpolate` is not available for 'draw'" in capsys.readouterr().err


def test_train_evaluate_sample_resume(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--num-train", "200", "--batch-size", "20", "--no-progress"]
    code = main(
        [
            "train",
            "--steps",
            "4",
            "--out",
            str(out),
            "--iwae-samples",
            "3",
            "--eval-examples",
            "10",
            "--validate-every",
            "2",
            "--checkpoint-every",
            "2",
            *common,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "log p(x)" in printed and "ELBO" in printed
    for name in [
        "checkpoint.pt",
        "metrics.jsonl",
        "eval.json",
        "generation.png",
        "samples.png",
        "nearest.png",
    ]:
        assert (out / name).is_file(), name
    first = json.loads((out / "eval.json").read_text())
    assert first["num_examples"] == 10 and first["iwae_samples"] == 3
    assert first["log_likelihood"] < 0

    # resume to 6 steps from the step-4 checkpoint
    code = main(
        [
            "train",
            "--steps",
            "6",
            "--out",
            str(out),
            "--resume",
            str(out / "checkpoint.pt"),
            "--iwae-samples",
            "2",
            "--eval-examples",
            "5",
            "--no-pictures",
            *common,
        ]
    )
    assert code == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6

    report = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(out / "checkpoint.pt"),
            "--iwae-samples",
            "4",
            "--num-examples",
            "8",
            "--json",
            str(report),
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(report.read_text())
    assert result["dataset"] == "glyphs" and result["num_examples"] == 8
    assert result["log_likelihood"] >= result["elbo"] - 1e-6

    pictures = tmp_path / "pictures"
    code = main(
        [
            "sample",
            str(out / "checkpoint.pt"),
            "--out",
            str(pictures),
            "--num-samples",
            "6",
            "--num-sequences",
            "2",
            "--no-nearest",
        ]
    )
    assert code == 0
    assert (pictures / "generation.png").is_file() and (pictures / "samples.png").is_file()


def test_checkpoint_of_an_unknown_model_gives_a_clear_error(tmp_path, capsys):
    path = save_checkpoint(
        {"model": "mystery", "model_config": {}, "model_state": {}, "guide_state": {}, "step": 0},
        tmp_path / "ram.pt",
    )
    assert main(["evaluate", str(path), "--no-progress"]) == 1
    assert "`evaluate` is not available for 'mystery'" in capsys.readouterr().err


def test_resuming_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    path = save_checkpoint(
        {"model": "mystery", "model_config": {}, "model_state": {}, "guide_state": {}, "step": 0},
        tmp_path / "ram.pt",
    )
    code = main(
        [
            "train",
            "--steps",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--resume",
            str(path),
            "--num-train",
            "100",
            "--no-progress",
        ]
    )
    assert code == 1
    assert "holds a 'mystery' model, expected 'draw'" in capsys.readouterr().err


def test_missing_data_file_gives_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path),
            "--steps",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "--download" in err


def test_parser_defaults_are_the_quickstart():
    from tasks.cli import _default_train_model

    args = build_parser().parse_args(_default_train_model(["train"]))
    assert (args.model, args.config, args.dataset) == ("draw", "small", "glyphs")
