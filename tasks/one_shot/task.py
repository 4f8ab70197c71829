"""``pyro-draw one-shot``: within-alphabet 20-way one-shot classification on Omniglot.

The protocol of Lake et al. (2015) and the official demo ``demo_classification.py``, as DooD
reports it (Liang et al. 2022, sec. 3.2, Table 1): in each of the 20 runs every query is
assigned the support with the highest score (one-way, no data augmentation), the accuracy of a
run is its fraction of correct queries, and the result is the mean over runs ± its standard
error. :func:`evaluate_runs` takes any scorer ``run -> (Q, S)`` scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tasks.evaluate import stderr
from tasks.figures import save_image_grid
from tasks.one_shot.baselines import BASELINES, Scorer
from tasks.one_shot.runs import OneShotRun, OneShotRuns, load_runs
from tasks.options import DataOptions, option
from tasks.results import write_json

__all__ = [
    "ONE_SHOT_DESCRIPTION",
    "ONE_SHOT_HELP",
    "OneShotOptions",
    "evaluate_runs",
    "one_shot_summary",
    "run_one_shot",
    "save_one_shot_examples",
]

ONE_SHOT_HELP = "Omniglot 20-way within-alphabet one-shot classification (Lake et al. runs)"
ONE_SHOT_DESCRIPTION = (
    "Classify the queries of the 20 official one-shot runs (all_runs.zip of brendenlake/omniglot) "
    "by a model-free baseline: mhd, the official demo's Modified Hausdorff distance on the "
    "105x105 ink pixels (38.8% error stated), or pixel, cosine nearest neighbour on the 50x50 "
    "grey images. Writes <out>/one_shot_<baseline>.json and .png."
)
PROTOCOL = (
    "20 runs of within-alphabet 20-way one-shot classification (Lake et al. 2015); one-way: each "
    "query is assigned the support with the highest score; accuracy per run, mean over runs ± "
    "standard error"
)
CLASSIFIERS = {
    "mhd": "Modified Hausdorff distance between centred ink-pixel sets of the 105x105 images "
    "(official demo_classification baseline)",
    "pixel": "cosine similarity of the 50x50 grey images (ink = 1, DooD's preprocessing)",
}
EXAMPLES_PER_RUN = 2


@dataclass
class OneShotOptions(DataOptions):
    """Options of ``pyro-draw one-shot``."""

    baseline: str = option("mhd", "model-free classifier", choices=tuple(BASELINES))
    runs: str | None = option(
        None,
        "the one-shot runs: the official all_runs.zip, or a folder with its layout",
        metavar="PATH",
        default_text="<data dir>/omniglot/all_runs.zip",
    )
    out: str = option("runs/one-shot", "output folder")
    pictures: bool = option(True, "skip the picture")


def _run_result(run: OneShotRun, scores: torch.Tensor, seconds: float) -> dict[str, Any]:
    """Accuracy, predictions and mistakes of one run from its ``(Q, S)`` scores."""
    expected = (len(run.query_names), len(run.support_names))
    if tuple(scores.shape) != expected:
        raise ValueError(f"{run.name}: scores of shape {tuple(scores.shape)}, expected {expected}")
    predictions = scores.argmax(1).tolist()  # the first of tied supports, as the demo's argmin
    labels = run.labels.tolist()
    short = lambda name: Path(name).stem  # noqa: E731
    mistakes = [
        {
            "query": short(run.query_names[q]),
            "chosen": short(run.support_names[p]),
            "true": short(run.support_names[t]),
        }
        for q, (p, t) in enumerate(zip(predictions, labels, strict=True))
        if p != t
    ]
    return {
        "run": run.name,
        "alphabet": run.metadata.get("alphabet"),
        "accuracy": 1.0 - len(mistakes) / len(labels),
        "errors": len(mistakes),
        "num_queries": len(labels),
        "num_supports": len(run.support_names),
        "seconds": seconds,
        "predictions": predictions,
        "labels": labels,
        "mistakes": mistakes,
    }


def evaluate_runs(
    runs: OneShotRuns, scorer: Scorer, *, name: str, progress: bool = True
) -> dict[str, Any]:
    """Classify every run with ``scorer`` (a tqdm bar shows the running accuracy); the result
    has ``mean_accuracy`` (a fraction), ``stderr`` over runs and ``per_run``."""
    start = time.perf_counter()
    per_run: list[dict[str, Any]] = []
    with tqdm(runs.runs, desc=f"one-shot {name}", unit="run", disable=not progress) as bar:
        for run in bar:
            began = time.perf_counter()
            scores = scorer(run)
            per_run.append(_run_result(run, scores, time.perf_counter() - began))
            bar.set_postfix(acc=f"{np.mean([r['accuracy'] for r in per_run]):.2%}")
    accuracy = np.array([r["accuracy"] for r in per_run])
    return {
        "task": "omniglot one-shot classification",
        "protocol": PROTOCOL,
        "classifier": name,
        "mean_accuracy": float(accuracy.mean()),
        "stderr": stderr(accuracy),
        "mean_error": float(1.0 - accuracy.mean()),
        "num_runs": len(per_run),
        "num_queries": int(sum(r["num_queries"] for r in per_run)),
        "per_run": per_run,
        "source": runs.source,
        "seconds": time.perf_counter() - start,
    }


def _examples(run: OneShotRun, result: dict[str, Any]) -> list[int]:
    """The queries shown for a run: its mistakes first, then correct ones."""
    pairs = enumerate(zip(result["predictions"], result["labels"], strict=True))
    wrong = [q for q, (p, t) in pairs if p != t]
    right = [q for q in range(len(result["labels"])) if q not in wrong]
    return (wrong + right)[:EXAMPLES_PER_RUN]


def save_one_shot_examples(runs: OneShotRuns, result: dict[str, Any], path: Path) -> Path:
    """One grid for all runs: per run, a few queries (mistakes first), each as the query, the
    chosen support and the true support (the 50×50 grey images)."""
    images, titles = [], []
    for run, found in zip(runs.runs, result["per_run"], strict=True):
        for q in _examples(run, found):
            chosen, true = found["predictions"][q], found["labels"][q]
            mark = "ok" if chosen == true else "wrong"
            images += [run.queries[q], run.supports[chosen], run.supports[true]]
            titles += [
                f"{run.name} {Path(run.query_names[q]).stem}",
                f"chose {Path(run.support_names[chosen]).stem} {mark}",
                f"true {Path(run.support_names[true]).stem}",
            ]
    return save_image_grid(torch.stack(images), path, ncols=3 * EXAMPLES_PER_RUN, titles=titles)


def one_shot_summary(result: dict[str, Any]) -> str:
    """The printed line: mean accuracy ± standard error over runs, error, time."""
    return (
        f"one-shot {result['baseline']}: accuracy {result['mean_accuracy']:.2%} ± "
        f"{result['stderr']:.2%} (error {result['mean_error']:.2%}) over {result['num_runs']} "
        f"runs, {result['seconds']:.1f} s"
    )


def run_one_shot(options: OneShotOptions) -> dict[str, Any]:
    """``pyro-draw one-shot``: load the runs (every file checked first), classify them with
    ``options.baseline``, write ``one_shot_<baseline>.json`` (and ``.png``) under ``out``."""
    start = time.perf_counter()
    runs = load_runs(options.runs, data_dir=options.data_dir, download=options.download)
    result = evaluate_runs(
        runs, BASELINES[options.baseline], name=options.baseline, progress=options.progress
    )
    result = {
        "baseline": options.baseline,
        "description": CLASSIFIERS[options.baseline],
        **result,
        "settings": {
            "baseline": options.baseline,
            "runs": runs.source["path"],
            "image_size": runs.source["size"],
            "data_dir": options.data_dir,
            "threads": torch.get_num_threads(),
            "seed": options.seed,
            "device": "cpu",  # the baselines are computed on the CPU
        },
    }
    out = Path(options.out)
    if options.pictures:
        picture = save_one_shot_examples(runs, result, out / f"one_shot_{options.baseline}.png")
        result["picture"] = str(picture)
    result["seconds"] = time.perf_counter() - start
    path = out / f"one_shot_{options.baseline}.json"
    write_json(result, path)
    print(f"{one_shot_summary(result)} -> {path}")
    return result
