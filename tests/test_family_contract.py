"""The family contract: a new family registers with one line and works through the CLI; run
options are checked at parse time, seeds make runs reproducible, options that do not apply to a
checkpoint's model are refused, and resuming with other settings says so."""

import json

import pytest
import torch

import tests.toy_family as toy
from tasks import families
from tasks.cli import build_parser, main

SMALL = ["--num-train", "100", "--batch-size", "20", "--no-progress", "--no-pictures"]
EVAL = ["--iwae-samples", "2", "--eval-examples", "5", "--num-valid", "20"]


@pytest.fixture
def with_toy(monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", (*families.FAMILIES, toy.FAMILY))


def test_a_registered_toy_family_trains_evaluates_and_samples_through_the_cli(
    with_toy, tmp_path, capsys
):
    out = tmp_path / "toy"
    assert main(["train", "toy-vae", "--out", str(out), "--no-progress", "--steps", "15"]) == 0
    first = json.loads((out / "eval.json").read_text())
    assert first["step"] == 15 and first["num_examples"] == 50
    assert first["log_likelihood"] >= first["elbo"] - 1e-6
    assert (out / "samples.png").is_file() and (out / "metrics.jsonl").is_file()
    report = tmp_path / "toy_eval.json"
    ckpt = str(out / "checkpoint.pt")
    args = ["--iwae-samples", "3", "--num-examples", "7", "--json", str(report), "--no-progress"]
    assert main(["evaluate", ckpt, *args]) == 0
    assert json.loads(report.read_text())["num_examples"] == 7
    assert main(["sample", ckpt, "--num-samples", "4", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "samples.png").is_file()
    assert main(["sample", ckpt, "--num-sequences", "2"]) == 1
    assert "--num-sequences does not apply to `sample` of 'toy-vae'" in capsys.readouterr().err
    assert "toy-vae" in families.model_names()


def _parameters(out, command, *extra):
    args = ["train", *command, "--out", str(out), "--threads", "1", "--no-progress", *extra]
    assert main([*args, "--no-pictures"]) == 0
    return torch.load(out / "checkpoint.pt", weights_only=True)["model_state"]


DRAW_RUN = ("draw", "--steps", "3", "--num-train", "100", "--batch-size", "20", *EVAL)
RAM_RUN = ("ram", "--config", "small", "--steps", "3", "--batch-size", "20", "--num-train", "100")
RAM_RUN += ("--num-valid", "20", "--eval-examples", "20")
CATCH_RUN = ("ram-catch", "--steps", "2", "--batch-size", "4", "--eval-games", "4")


@pytest.mark.parametrize("command", [DRAW_RUN, RAM_RUN, CATCH_RUN], ids=["draw", "ram", "catch"])
def test_the_same_command_twice_gives_identical_parameters(command, tmp_path, request):
    if command[0] == "ram":
        request.getfixturevalue("real_data_dir")  # MNIST digits
    first = _parameters(tmp_path / "a", command)
    second = _parameters(tmp_path / "b", command)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = _parameters(tmp_path / "c", command, "--seed", "1")
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--steps", "0", "expected a number > 0"),
        ("--steps", "-5", "expected a number > 0"),
        ("--batch-size", "0", "expected a number > 0"),
        ("--batch-size", "-3", "expected a number > 0"),
        ("--lr", "-1", "expected a number > 0"),
        ("--lr", "0", "expected a number > 0"),
        ("--lr", "nan", "expected a number > 0"),
        ("--clip-norm", "-1", "expected a number >= 0"),
        ("--max-seconds", "-1", "expected a number > 0"),
        ("--iwae-samples", "0", "expected a number > 0"),
        ("--eval-examples", "0", "expected a number > 0"),
        ("--threads", "0", "expected a number > 0"),
        ("--device", "gpu", "expected cpu, cuda, cuda:N or mps"),
        ("--steps", "two", "expected int"),
    ],
)
def test_bad_train_values_are_refused_at_parse_time(option, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "draw", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and message in err


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_cuda_is_refused_at_parse_time(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "draw", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.fixture(scope="module")
def draw_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("draw")
    assert main(["train", "--steps", "2", "--out", str(out), *SMALL, *EVAL]) == 0
    return out / "checkpoint.pt"


@pytest.mark.parametrize(
    "command, option",
    [
        (["evaluate", "--num-examples", "-5"], "--num-examples"),
        (["evaluate", "--iwae-samples", "0"], "--iwae-samples"),
        (["sample", "--num-samples", "-3"], "--num-samples"),
        (["sample", "--device", "gpu"], "--device"),
    ],
)
def test_bad_checkpoint_command_values_are_refused_before_any_work(
    command, option, draw_checkpoint, capsys
):
    # refused by argparse (exit 2) where every model checks the option alike, else by the
    # checkpoint model's options class right after the checkpoint is read (exit 1)
    try:
        code = main([command[0], str(draw_checkpoint), *command[1:]])
    except SystemExit as exc:
        code = exc.code
    assert code in (1, 2)
    assert option in capsys.readouterr().err
    assert not list(draw_checkpoint.parent.glob("eval_*.json"))


def test_an_option_of_another_model_is_refused_for_this_checkpoint(draw_checkpoint, capsys):
    # sketch-rnn's and DooD's `sample` take --temperature; DRAW's has no temperature
    assert main(["sample", str(draw_checkpoint), "--temperature", "0.5", "--no-nearest"]) == 1
    err = capsys.readouterr().err
    assert "--temperature does not apply to `sample` of 'draw'" in err


def test_resume_with_another_config_or_dataset_says_so(draw_checkpoint, tmp_path, capsys):
    base = ["train", "--steps", "3", "--out", str(tmp_path / "r"), "--resume", str(draw_checkpoint)]
    assert main([*base, "--config", "mnist", *SMALL, *EVAL]) == 1
    assert "trained with --config small, this command asks for --config mnist" in (
        capsys.readouterr().err
    )
    assert main([*base, "--dataset", "mnist", *SMALL, *EVAL]) == 1
    assert "trained on --dataset glyphs" in capsys.readouterr().err
    assert main([*base, "--config", "small", *SMALL, *EVAL]) == 0  # the same config is fine


def test_resume_refuses_to_change_the_clipping_through_a_default(tmp_path, capsys):
    """A run trained with a clip other than this command's default continues only with that clip
    given (sketch-rnn's default changed from the global norm to the element-wise clip)."""
    out = tmp_path / "r"
    assert (
        main(["train", "--steps", "2", "--out", str(out), "--clip-value", "0.5", *SMALL, *EVAL])
        == 0
    )
    resume = ["train", "--steps", "3", "--out", str(out), "--resume", str(out / "checkpoint.pt")]
    capsys.readouterr()
    assert main([*resume, *SMALL, *EVAL]) == 1
    err = capsys.readouterr().err
    assert "was trained with --clip-value 0.5, this command's default is --clip-value 0" in err
    assert "pass --clip-value 0.5 to continue it as trained" in err
    assert main([*resume, "--clip-value", "0.5", *SMALL, *EVAL]) == 0


def test_sketch_rnn_clips_each_gradient_element_by_default():
    """The reference code's reading of the appendix's "gradient clipping of 1.0"."""
    from tasks.cli import build_parser

    args = build_parser().parse_args(["train", "sketch-rnn"])
    assert (args.clip_norm, args.clip_value) == (0.0, 1.0)
    args = build_parser().parse_args(["train", "draw"])
    assert args.clip_value == 0.0


def test_help_prints_each_default_once_and_only_loadable_datasets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "draw", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: 600)" in text
    assert "emnist50" not in text and "glyphs" in text
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and text.count("next to the checkpoint") == 1
