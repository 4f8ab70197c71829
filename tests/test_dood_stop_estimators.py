"""The NVIL-vs-enumeration comparison script (examples/dood_stop_estimators.py) on a tiny budget."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "dood_stop_estimators", ROOT / "examples" / "dood_stop_estimators.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and type hints look the module up by name
    spec.loader.exec_module(module)
    return module


def test_comparison_runs_from_one_initialisation_and_reports_both_estimators(tmp_path):
    example = _load_example()
    argv = ["--image-size", "16", "--seconds", "1", "--batch-size", "4", "--num-train", "16"]
    argv += ["--eval-examples", "6", "--eval-draws", "1", "--num-evals", "1", "--grad-draws", "3"]
    argv += [
        "--out",
        str(tmp_path / "runs"),
        "--results",
        str(tmp_path),
        "--figures",
        str(tmp_path),
    ]
    result = example.main(argv)
    assert result["same_initial_model"] is True
    saved = json.loads((tmp_path / "dood_stop_estimators_glyphs.json").read_text())
    assert saved["estimators"].keys() == {"nvil", "enum"}
    for run in saved["estimators"].values():
        assert run["steps"] >= 1 and math.isfinite(run["final_elbo"])
        assert 0.0 <= run["count_accuracy"] <= 1.0
        assert run["curve"][0]["step"] == 0 and run["curve"][-1]["cpu_seconds"] >= 1.0
    for point in ("initialisation", "end of nvil run"):
        for estimator in ("nvil", "enum"):
            moments = saved["gradient_variance"][point][estimator]
            assert moments["draws"] == 3
            assert set(moments["total_variance"]) == {"stop network", "guide", "model"}
            assert all(v >= 0 and math.isfinite(v) for v in moments["total_variance"].values())
    assert (tmp_path / "dood_stop_estimators_glyphs.png").stat().st_size > 0
