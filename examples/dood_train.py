"""Train DooD, AIR or Difference-AIR (Liang et al. 2022) within a CPU budget and report the IWAE
log-likelihood (K = 200, as in Fig. 4), the inferred stroke counts and the pictures.

Trains on MNIST, Omniglot or QuickDraw at 50×50 (appendix A) or on the embedded glyphs (whose
true stroke counts give a stroke-count accuracy), with NVIL (appendix C.1) or the exact
enumeration of the number of strokes (``--stop enum``), then evaluates a fixed random subset of
the test split and, with ``--transfer``, the same model zero-shot on other datasets (Fig. 3 /
Fig. 4's across-dataset generalisation). Writes ``<results>/<name>.json`` (no per-example
lists) and ``<figures>/<name>_{reconstruction,samples,generation,completion}.png`` with
``<name> = dood[_<ablation>]_<dataset>`` or ``dood_<air|difference_air>_<dataset>``.

    python examples/dood_train.py --model dood --dataset mnist --max-seconds 3600 --threads 1
    python examples/dood_train.py --model difference-air --dataset mnist --max-seconds 3600
    python examples/dood_train.py --model dood --config dood_EG --dataset mnist --transfer omniglot
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pyro
import torch

from inference.trainer import TrainConfig
from tasks.dood import (
    BASE_LR,
    DATASETS,
    DEFAULT_CONFIG,
    MODELS,
    NVIL_LR,
    PAPER_IWAE_SAMPLES,
    DooDTrainJob,
    evaluate_dood,
    format_dood_summary,
    load_dood_checkpoint,
    load_dood_images,
    run_dood_training,
    write_reconstructions,
)
from tasks.evaluate import write_json

PICTURES = ("reconstruction", "samples", "generation", "completion")


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dood", choices=sorted(MODELS))
    parser.add_argument("--config", default=None, help="named config (default: the paper's)")
    parser.add_argument("--dataset", default="mnist", choices=DATASETS)
    parser.add_argument("--stop", default=None, choices=("nvil", "enum"))
    parser.add_argument("--beta", type=float, default=None, help="default: DooD 4, AIR 5")
    parser.add_argument("--image-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound on steps")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="training wall time")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=BASE_LR, help="appendix C: 1e-4")
    parser.add_argument("--nvil-lr", type=float, default=NVIL_LR, help="appendix C: 1e-3")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-valid", type=int, default=200)
    parser.add_argument("--validate-every", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--iwae-samples", type=int, default=PAPER_IWAE_SAMPLES)
    parser.add_argument(
        "--eval-examples", type=int, default=200, help="test images (a seeded random subset)"
    )
    parser.add_argument(
        "--transfer",
        nargs="*",
        default=[],
        choices=DATASETS,
        help="also evaluate (IWAE, strokes, reconstructions) on these datasets' test splits",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--out", default=None, help="run folder (default runs/<name>)")
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--figures", default="examples/figures")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    config = args.config or DEFAULT_CONFIG[args.model]
    name = run_name(args.model, config, args.dataset, args.stop)
    out = Path(args.out or f"runs/{name}")
    job = DooDTrainJob(
        model=args.model,
        config=config,
        dataset=args.dataset,
        out=str(out),
        stop=args.stop,
        beta=args.beta,
        image_size=args.image_size,
        nvil_lr=args.nvil_lr,
        num_train=args.num_train,
        num_valid=args.num_valid,
        eval_examples=args.eval_examples,
        iwae_samples=args.iwae_samples,
        resume=args.resume,
        device=args.device,
        data_dir=args.data_dir,
        progress=not args.no_progress,
    )
    train_config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        log_every=20,
        validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
        max_seconds=args.max_seconds,
    )
    start = time.perf_counter()
    result = run_dood_training(job, train_config)
    result["transfer"] = {}
    if args.transfer:
        model, guide, ckpt = load_dood_checkpoint(out / "checkpoint.pt", device=args.device)
        size = int(ckpt["model_config"]["height"])
        for dataset in args.transfer:
            data = load_dood_images(
                dataset,
                "test",
                size=size,
                num_examples=args.eval_examples,
                seed=args.seed,
                data_dir=args.data_dir,
            )
            res = evaluate_dood(
                model,
                guide,
                data,
                iwae_samples=args.iwae_samples,
                seed=args.seed,
                device=args.device,
                progress=not args.no_progress,
            )
            print(f"zero-shot on {dataset}:\n{format_dood_summary(res)}")
            res.pop("per_example")
            result["transfer"][dataset] = res
            write_reconstructions(
                guide,
                data.images[:8].to(args.device),
                out / f"reconstruction_{dataset}.png",
                seed=args.seed,
                title=f"{args.model} trained on {args.dataset}, test images of {dataset}",
            )
    summary = {k: v for k, v in result.items() if k != "per_example"}
    summary.update(
        experiment=f"{name}: {args.model} ({config}) trained on {args.dataset}",
        wall_minutes=(time.perf_counter() - start) / 60,
        max_seconds=args.max_seconds,
        command="python examples/dood_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    write_json(summary, results / f"{name}.json")
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    pictures = [p for p in PICTURES if (out / f"{p}.png").is_file()]
    pictures += [f"reconstruction_{d}" for d in args.transfer]
    for picture in pictures:
        shutil.copy(out / f"{picture}.png", figures / f"{name}_{picture}.png")
    keys = ("log_likelihood", "log_likelihood_stderr", "elbo", "valid_elbo", "steps")
    print(json.dumps({k: summary[k] for k in keys}, indent=1))
    print(f"wrote {results / f'{name}.json'} and {len(pictures)} figures in {figures}")
    return summary


if __name__ == "__main__":
    main()
