"""What `evaluate` reports: infinite Pareto k̂ said the same way in the text and the JSON, and
the plan (examples, K, estimated time) printed before the work starts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import tasks.evaluate as evaluate_mod
from generative.dood_config import DooDConfig
from inference.checkpoint import save_checkpoint
from tasks.cli import main
from tasks.dood.models import build_dood
from tasks.draw.models import build_draw
from tasks.evaluate import evaluate_log_likelihood, format_summary, write_evaluation
from tasks.results import write_json
from tests.tiny import tiny_dood


def normal_model(x: torch.Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0]), 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x[:, 0])


def normal_guide(x: torch.Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x[:, 0] / 2, 0.5))


def _with_infinite_k(monkeypatch: pytest.MonkeyPatch) -> None:
    """k̂ = inf for the first example of every batch, 0.2 for the others."""

    def fake(log_w: torch.Tensor) -> np.ndarray:
        k = np.full(log_w.shape[1], 0.2)
        k[0] = math.inf
        return k

    monkeypatch.setattr(evaluate_mod, "pareto_k", fake)


# ------------------------------------------------------------------------------ Pareto k̂
def test_infinite_k_is_inf_in_text_and_json(monkeypatch, tmp_path: Path, capsys) -> None:
    _with_infinite_k(monkeypatch)
    images = torch.linspace(-1, 1, 8).reshape(8, 1)
    result = evaluate_log_likelihood(
        normal_model, normal_guide, images, num_particles=30, batch_size=4, progress=False
    )
    pk = result["pareto_k"]
    assert pk["max"] == math.inf and pk["num_infinite"] == 2
    assert pk["fraction_above_0.7"] == pytest.approx(0.25)  # the infinite ones count as > 0.7
    assert pk["mean"] == pytest.approx(0.2)  # over the finite k̂
    text = format_summary(result)
    assert "Pareto k̂ max inf" in text and "n/a" not in text
    assert "25.0% of examples have k̂ > 0.7 (2 of 8 with k̂ = inf" in text

    path = tmp_path / "eval.json"
    write_evaluation(result, path, text)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["pareto_k"]["max"] == "inf" and saved["pareto_k"]["num_infinite"] == 2
    assert saved["per_example"]["pareto_k"].count("inf") == 2
    assert float(saved["pareto_k"]["max"]) == math.inf
    assert format_summary(saved) == text  # the JSON read back says the same
    assert text in capsys.readouterr().out


def test_unavailable_k_stays_null_and_n_a(tmp_path: Path) -> None:
    images = torch.zeros(3, 1)
    result = evaluate_log_likelihood(
        normal_model, normal_guide, images, num_particles=4, progress=False
    )
    assert math.isnan(result["pareto_k"]["max"]) and result["pareto_k"]["num_infinite"] == 0
    write_json(result, tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["pareto_k"]["max"] is None
    assert "k̂ max n/a" in format_summary(result) and "k̂ max n/a" in format_summary(saved)


def test_json_writes_infinities_as_strings(tmp_path: Path) -> None:
    write_json({"a": -math.inf, "b": [math.inf, math.nan, 1.5]}, tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved == {"a": "-inf", "b": ["inf", None, 1.5]}


# ------------------------------------------------------------------------- the plan line
def test_the_plan_and_the_estimate_come_before_the_rest() -> None:
    lines: list[str] = []

    def model(x: torch.Tensor) -> None:
        lines.append("model ran")
        normal_model(x)

    images = torch.zeros(6, 1)
    evaluate_log_likelihood(
        model, normal_guide, images, num_particles=3, batch_size=2, progress=False,
        announce=lines.append,
    )  # fmt: skip
    assert lines[0] == (
        "evaluating: IWAE log p(x) of 6 examples with K=3 importance samples each, in 3 "
        "batches of up to 2; timing the first batch for an estimate of the rest"
    )
    estimate = [line for line in lines if "first 2 examples took" in line]
    assert len(estimate) == 1 and "for the other 4 (done near" in estimate[0]
    first_batch = lines[1 : lines.index(estimate[0])]  # right after the first batch's passes
    assert first_batch and set(first_batch) == {"model ran"}
    assert lines[-1] == "model ran"  # and before the other batches


def test_one_batch_needs_no_estimate() -> None:
    lines: list[str] = []
    evaluate_log_likelihood(
        normal_model, normal_guide, torch.zeros(2, 1), num_particles=2, progress=False,
        announce=lines.append,
    )  # fmt: skip
    assert lines == [
        "evaluating: IWAE log p(x) of 2 examples with K=2 importance samples each, in 1 batch "
        "of up to 100"
    ]


def _checkpoint(tmp_path: Path, model: str, build, config: dict) -> Path:
    net, guide = build(config)
    return save_checkpoint(
        {
            "model": model,
            "model_config": net.config.to_dict(),
            "model_state": net.state_dict(),
            "guide_state": guide.state_dict(),
            "step": 0,
            "data": {"dataset": "glyphs"},
        },
        tmp_path / f"{model}.pt",
    )


def _evaluate(path: Path, tmp_path: Path, k: int) -> tuple[list[str], dict]:
    report = tmp_path / "eval.json"
    argv = ["evaluate", str(path), "--iwae-samples", str(k), "--num-examples", "4"]
    assert main([*argv, "--batch-size", "2", "--json", str(report), "--no-progress"]) == 0
    return report, json.loads(report.read_text(encoding="utf-8"))


def test_cli_evaluate_of_draw_says_what_it_will_do_first(tmp_path: Path, capsys) -> None:
    from generative.draw import draw_config

    path = _checkpoint(tmp_path, "draw", build_draw, draw_config("small").to_dict())
    _, saved = _evaluate(path, tmp_path, k=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("evaluating: IWAE log p(x) of 4 examples with K=2 ")
    assert out[1].startswith("  first 2 examples took ") and "other 2" in out[1]
    assert out[2].startswith("log p(x) ≈") and saved["num_examples"] == 4


def test_cli_evaluate_of_dood_with_infinite_k(tmp_path: Path, monkeypatch, capsys) -> None:
    _with_infinite_k(monkeypatch)
    config = DooDConfig(**tiny_dood(16, hidden=8, render_points=10)).to_dict()
    path = _checkpoint(tmp_path, "dood", build_dood, config)
    with pyro.validation_enabled(False):
        _, saved = _evaluate(path, tmp_path, k=21)
    out = capsys.readouterr().out
    assert out.startswith("evaluating: IWAE log p(x) of 4 examples with K=21 ")
    assert (
        "Pareto k̂ max inf" in out and "50.0% of examples have k̂ > 0.7 (2 of 4 with k̂ = inf" in out
    )
    assert saved["pareto_k"]["max"] == "inf" and saved["pareto_k"]["num_infinite"] == 2
    assert saved["pareto_k"]["fraction_above_0.7"] == 0.5


def test_cli_evaluate_refuses_images_of_another_size(tmp_path: Path, capsys) -> None:
    from generative.draw import draw_config

    config = {**draw_config("small").to_dict(), "height": 20, "width": 20}
    path = _checkpoint(tmp_path, "draw", build_draw, config)
    assert main(["evaluate", str(path), "--num-examples", "2", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "glyphs/test images are 1x28x28 (C x H x W), but the model of checkpoint" in captured.err
    assert "takes 1x20x20" in captured.err and "evaluating" not in captured.out
