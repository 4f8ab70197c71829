"""examples/draw_mnist.py and examples/draw_learning_curve.py on a tiny budget: a resumed run
extends the test-NLL curve of its result JSON, a new run starts one, and the figure takes
several runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pyro
import pytest
from matplotlib.image import imread

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_resumed_runs_extend_the_nll_curve_and_the_figure_draws_them(tmp_path: Path) -> None:
    draw_mnist = _load("draw_mnist")
    run, results = tmp_path / "run", tmp_path / "results"
    argv = ["--config", "mnist_no_attention", "--dataset", "glyphs", "--batch-size", "2"]
    argv += ["--validate-every", "1", "--num-valid", "2", "--eval-examples", "2"]
    argv += ["--iwae-samples", "2", "--threads", "1", "--no-progress", "--no-pictures"]
    argv += ["--out", str(run), "--results", str(results)]
    pyro.clear_param_store()
    draw_mnist.main([*argv, "--steps", "1"])
    pyro.clear_param_store()
    draw_mnist.main([*argv, "--steps", "2", "--resume", str(run / "checkpoint.pt")])
    path = results / "draw_mnist_mnist_no_attention.json"
    summary = json.loads(path.read_text())
    assert [p["steps"] for p in summary["curve"]] == [1, 2]
    assert summary["curve"][-1]["nll"] == summary["nll"]
    assert "--resume" in summary["curve"][-1]["command"]
    assert "--resume" not in summary["curve"][0]["command"]

    pyro.clear_param_store()  # a new run in the same results folder starts a new curve
    draw_mnist.main([*argv, "--steps", "1", "--overwrite"])
    assert [p["steps"] for p in json.loads(path.read_text())["curve"]] == [1]

    figure = _load("draw_learning_curve")
    metrics = run / "metrics.jsonl"
    out = figure.main(["--run", f"a={metrics}", "--points", f"a={path}", "--run", f"b={metrics}",
                       "--out", str(tmp_path / "curve.png")])  # fmt: skip
    assert imread(out).shape[0] > 100
    with pytest.raises(SystemExit):  # --points for a label without --run
        figure.main(["--run", f"a={metrics}", "--points", f"c={path}", "--out", str(out)])

    # a two-digit-style result (one final point, steps but no epochs) plots against steps only
    single = tmp_path / "two_digits.json"
    single.write_text(json.dumps({"nll": 400.0, "steps": 2, "iwae_samples": 20}))
    assert figure.nll_points(single)[0] == [
        {"epochs": None, "steps": 2, "nll": 400.0, "stderr": 0.0}
    ]
    argv = ["--run", f"a={metrics}", "--points", f"a={single}", "--out", str(out)]
    assert imread(figure.main([*argv, "--x", "steps", "--title", "two digits"])).shape[0] > 100
    with pytest.raises(SystemExit, match="no 'epochs'"):
        figure.main(argv)
