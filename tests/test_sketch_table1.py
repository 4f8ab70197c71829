"""examples/sketch_rnn_table1.py on a tiny budget: a setting trained, then continued from its
checkpoint to more steps (equal steps over several sessions)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pyro

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
