"""examples/sketch_rnn_table1.py on a tiny budget: a setting trained, then continued from its
checkpoint to more steps (equal steps over several sessions)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_example():
    path = ROOT / "examples" / "sketch_rnn_table1.py"
    spec = importlib.util.spec_from_file_location("sketch_rnn_table1", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def test_a_setting_continues_from_its_checkpoint_to_more_steps(tmp_path: Path) -> None:
    example = _load_example()
    argv = ["--dataset", "glyphs", "--settings", "w_kl=1.00", "--batch-size", "4"]
    argv += ["--max-length", "40", "--validate-every", "2", "--valid-examples", "4"]
    argv += ["--eval-examples", "4", "--iwae-samples", "2", "--threads", "1", "--no-progress"]
    argv += ["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    pyro.clear_param_store()
    first = example.main([*argv, "--steps", "2"])
    assert first["settings"]["w_kl=1.00"]["steps"] == 2
    pyro.clear_param_store()
    second = example.main([*argv, "--steps", "4", "--continue-settings"])
    row = second["settings"]["w_kl=1.00"]
    assert row["steps"] == 4 and row["checkpoint"] == first["settings"]["w_kl=1.00"]["checkpoint"]
    assert "--continue-settings" in second["command"]
    metrics = (tmp_path / "runs" / "w_kl_1.00" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in metrics if "loss" in json.loads(line)]
    assert steps == sorted(steps) and steps[-1] == 4  # one history, continued


def test_paired_differences_judge_each_ordering_on_the_same_sketches() -> None:
    example = _load_example()
    base = np.array([0.5, 0.7, 0.2, 0.9])
    per_sketch = {
        # w_KL 0.5 is lower than 1.0 on every sketch by 0.1 ± 0.01: resolved as the paper says
        "w_kl=1.00": {"L_R": base.tolist(), "L_KL": [0.2] * 4},
        "w_kl=0.50": {"L_R": (base - [0.09, 0.11, 0.1, 0.1]).tolist(), "L_KL": [0.3] * 4},
        # the decoder-only model: 0.2 ± 0.06 below w_KL 1.0 (against the paper), and against
        # w_KL 0.5 a difference of 0.1 ± 0.06, within 2 standard errors (unresolved)
        "decoder_only": {"L_R": (base - [0.3, 0.1, 0.3, 0.1]).tolist(), "L_KL": [0.0] * 4},
    }
    paired = example.paired_differences(per_sketch)
    first = paired["L_R: w_kl=1.00 − w_kl=0.50"]
    assert first["mean"] == pytest.approx(0.1)
    assert first["stderr"] == pytest.approx(np.std([0.09, 0.11, 0.1, 0.1], ddof=1) / 2)
    assert first["verdict"] == "as paper"
    assert paired["L_KL: w_kl=0.50 − w_kl=1.00"]["verdict"] == "as paper"
    assert paired["L_R: decoder_only − w_kl=1.00"]["verdict"] == "against paper"
    assert paired["L_R: decoder_only − w_kl=0.50"]["verdict"] == "unresolved"
    assert not any("w_kl=0.25" in key for key in paired)  # a setting not run is skipped
    per_sketch["w_kl=0.50"]["L_R"].pop()
    with pytest.raises(ValueError, match="same sketches"):
        example.paired_differences(per_sketch)
