"""Train DooD, AIR or Difference-AIR (Liang et al. 2022) within a CPU budget and report the IWAE
log-likelihood (K = 200, as in Fig. 4), the inferred stroke counts and the pictures.

Trains on MNIST, Omniglot or QuickDraw at 50×50 (appendix A) or on the embedded glyphs (whose
true stroke counts give a stroke-count accuracy), with NVIL (appendix C.1) or the exact
enumeration of the number of strokes (``--stop enum``), then evaluates a fixed random subset of
the test split and, with ``--transfer``, the same model zero-shot on other datasets (Fig. 3 /
Fig. 4's across-dataset generalisation). Writes ``<results>/<name>.json`` (no per-example
lists) and ``<figures>/<name>_{reconstruction,samples,generation,completion}.png`` with
``<name> = dood[_<ablation>]_<dataset>`` or ``dood_<air|difference_air>_<dataset>``.

    python examples/dood_train.py --config hours --dataset omniglot --max-seconds 3600 --threads 1
    python examples/dood_train.py --model dood --dataset glyphs --max-seconds 360 --threads 1
    python examples/dood_train.py --model difference-air --dataset mnist --max-seconds 3600
    python examples/dood_train.py --model dood --config dood_EG --dataset mnist --transfer omniglot
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.dood import FAMILY
from tasks.dood.data import DATASETS, checkpoint_images
from tasks.dood.evaluate import evaluate_dood, format_dood_summary
from tasks.dood.models import (
    BASE_LR,
    DEFAULT_CONFIG,
    MODEL_NAMES,
    PAPER_IWAE_SAMPLES,
    DooDOptions,
    default_config_name,
)
from tasks.dood.pictures import write_reconstructions
from tasks.families import load_trained
from tasks.options import RunOptions, add_options, given_options, option, options_from
from tasks.results import write_json
from tasks.training import train

PICTURES = ("reconstruction", "samples", "generation", "completion")
#: the example's defaults of the common training options (a time budget, not a step count)
RUN_DEFAULTS = dict(
    dataset="mnist",
    out=None,
    steps=1_000_000,
    max_seconds=3600.0,
    batch_size=64,
    lr=None,  # the config's: BASE_LR (appendix C), 1e-3 for the CPU configs
    validate_every=200,
    checkpoint_every=200,
    log_every=20,
)


@dataclass
class ExampleOptions:
    """What only this example has: the model, the transfer datasets and where results go."""

    model: str = option("dood", "model to train", choices=MODEL_NAMES)
    transfer: list[str] = option(
        [],
        "also evaluate (IWAE, strokes, reconstructions) on these datasets' test splits",
        choices=DATASETS,
    )
    results: str = option("examples/results", "folder of the result JSON")
    figures: str = option("examples/figures", "folder of the figures")


def run_name(model: str, config: str, dataset: str, stop: str | None) -> str:
    """``dood[_<ablation>]_<dataset>`` or ``dood_<air|difference_air>[_<config>]_<dataset>``,
    with ``_enum`` for the enumerated objective."""
    if model == "dood":
        stem = "dood" if config == "dood" else f"dood_{config.removeprefix('dood_')}"
    else:
        stem = f"dood_{model.replace('-', '_')}"
        if config != DEFAULT_CONFIG[model]:
            stem += f"_{config}"
    return f"{stem}_{dataset}" + ("_enum" if stop == "enum" else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_options(parser.add_argument_group("example options"), ExampleOptions)
    add_options(
        parser.add_argument_group("training options"),
        RunOptions,
        defaults=RUN_DEFAULTS,
        choices={"dataset": DATASETS},
        default_texts={
            "config": "chosen for the dataset (the paper's; minutes on glyphs)",
            "out": "runs/<name>",
            "lr": f"the config's: {BASE_LR:g}, 1e-3 for the CPU configs",
        },
    )
    add_options(
        parser.add_argument_group("DooD/AIR options"),
        DooDOptions,
        defaults={"num_valid": 200, "iwae_samples": PAPER_IWAE_SAMPLES},
    )
    return parser


def transfer(
    out: Path, example: ExampleOptions, run: RunOptions, options: DooDOptions
) -> dict[str, dict]:
    """Zero-shot evaluation and reconstructions of the trained model on other datasets."""
    results: dict[str, dict] = {}
    if not example.transfer:
        return results
    model, guide, ckpt = load_trained(out / "checkpoint.pt", device=run.device)
    for dataset in example.transfer:
        data = checkpoint_images(
            ckpt, run, dataset=dataset, split="test", num_examples=options.eval_examples
        )
        res = evaluate_dood(
            model,
            guide,
            data,
            iwae_samples=options.iwae_samples,
            seed=run.seed,
            device=run.device,
            progress=run.progress,
        )
        print(f"zero-shot on {dataset}:\n{format_dood_summary(res)}")
        res.pop("per_example")
        results[dataset] = res
        write_reconstructions(
            guide,
            data.images[:8].to(run.device),
            out / f"reconstruction_{dataset}.png",
            seed=run.seed,
            title=f"{example.model} trained on {run.dataset}, test images of {dataset}",
        )
    return results


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    example = options_from(ExampleOptions, args)
    config = args.config or default_config_name(example.model, args.dataset)
    name = run_name(example.model, config, args.dataset, args.stop)
    out = Path(args.out or f"runs/{name}")
    run = options_from(
        RunOptions, args, config=config, out=str(out), given=given_options(parser, argv)
    )
    options = options_from(DooDOptions, args)
    start = time.perf_counter()
    result = train(FAMILY, example.model, run, options)
    result["transfer"] = transfer(out, example, run, options)
    summary = {k: v for k, v in result.items() if k != "per_example"}
    summary.update(
        experiment=f"{name}: {example.model} ({config}) trained on {run.dataset}",
        wall_minutes=(time.perf_counter() - start) / 60,
        max_seconds=run.max_seconds,
        command="python examples/dood_train.py " + " ".join(argv),
    )
    results = Path(example.results)
    results.mkdir(parents=True, exist_ok=True)
    write_json(summary, results / f"{name}.json")
    figures = Path(example.figures)
    figures.mkdir(parents=True, exist_ok=True)
    pictures = [p for p in PICTURES if (out / f"{p}.png").is_file()]
    pictures += [f"reconstruction_{d}" for d in example.transfer]
    for picture in pictures:
        shutil.copy(out / f"{picture}.png", figures / f"{name}_{picture}.png")
    keys = ("log_likelihood", "log_likelihood_stderr", "elbo", "valid_elbo", "steps")
    print(json.dumps({k: summary[k] for k in keys}, indent=1))
    print(f"wrote {results / f'{name}.json'} and {len(pictures)} figures in {figures}")
    return summary


if __name__ == "__main__":
    main()
