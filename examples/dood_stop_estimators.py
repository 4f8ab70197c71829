"""Compare the two estimators of DooD's stop variables at equal compute (issue 5): NVIL
(REINFORCE with local signals and a neural baseline, appendix C.1) against exact enumeration of
the number of strokes (no score function).

Both runs start from the same initialisation and see the same batches. Each trains for the same
CPU time (``--seconds``, process time with one thread, so other load on the machine does not
favour either); the ELBO (β = 1, Eq. 9, exact in the stroke count, averaged over
``--eval-draws`` draws of the continuous latents) of a fixed validation subset is recorded along
the way. Then the gradient variance of both estimators of the β-weighted ELBO is measured at the
same parameters and on the same batch (:func:`inference.gradients.gradient_moments`): at the
initialisation and at the end of the NVIL run (where NVIL's baseline and running statistics are
trained). Writes ``<results>/dood_stop_estimators_<dataset>.json`` and an ELBO-vs-time figure
``<figures>/dood_stop_estimators_<dataset>.png``.

    python examples/dood_stop_estimators.py --config small --dataset glyphs --seconds 600
    python examples/dood_stop_estimators.py --config dood --dataset mnist --seconds 900
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from inference.gradients import gradient_moments  # noqa: E402
from inference.nvil import EnumeratedObjective  # noqa: E402
from inference.trainer import SVITrainer, TrainConfig  # noqa: E402
from tasks.data.batches import ImageBatches  # noqa: E402
from tasks.data.core import ImageData  # noqa: E402
from tasks.dood import FAMILY  # noqa: E402
from tasks.dood.data import DATASETS, load_dood_images  # noqa: E402
from tasks.dood.models import (  # noqa: E402
    BASE_LR,
    MODEL_NAMES,
    DooDOptions,
    max_steps,
    model_config,
    nvil_lr_groups,
    stop_objective,
)
from tasks.options import (  # noqa: E402
    RunOptions,
    add_options,
    field_names,
    option,
    options_from,
    positive,
)
from tasks.results import write_json  # noqa: E402
from tasks.training import prepare_process  # noqa: E402

ESTIMATORS = ("nvil", "enum")
GROUPS = {
    "stop network": lambda n: n.startswith("guide.pres_net."),
    "guide": lambda n: n.startswith("guide.") and not n.startswith("guide.baseline."),
    "model": lambda n: n.startswith("model."),
}
#: the common training options this comparison uses, with its defaults
RUN_FIELDS = {
    "config": "small",
    "dataset": "glyphs",
    "batch_size": 64,
    "lr": BASE_LR,
    "seed": 0,
    "threads": 1,
    "out": "runs/dood_stop_estimators",
    "data_dir": None,
    "download": False,
}
#: the DooD/AIR training options it uses (the estimator is what it varies)
MODEL_FIELDS = ("image_size", "beta", "stop_lr", "baseline_lr", "num_train")


@dataclass
class ComparisonOptions:
    """What only this comparison has: the model, the CPU budget, the measurements, the outputs."""

    model: str = option("dood", "model to compare the estimators on", choices=MODEL_NAMES)
    seconds: float = option(600.0, "CPU seconds per estimator", check=positive)
    eval_examples: int = option(200, "validation images of the ELBO curve", check=positive)
    eval_draws: int = option(4, "draws of the continuous latents per ELBO", check=positive)
    num_evals: int = option(10, "ELBO evaluations along each run", check=positive)
    grad_draws: int = option(32, "gradient draws per variance estimate", check=positive)
    results: str = option("examples/results", "folder of the result JSON")
    figures: str = option("examples/figures", "folder of the figure")


def named_parameters(model: nn.Module, guide: nn.Module) -> list[tuple[str, Tensor]]:
    """``model.*`` and ``guide.*`` parameters (the NVIL baseline included; the groups skip it)."""
    return [(f"model.{n}", p) for n, p in model.named_parameters()] + [
        (f"guide.{n}", p) for n, p in guide.named_parameters()
    ]


def exact_elbo(
    model: nn.Module,
    guide: nn.Module,
    images: Tensor,
    draws: int,
    seed: int,
    truth: Tensor | None = None,
) -> dict[str, float]:
    """ELBO (β = 1) with the stroke count summed out exactly, averaged over ``draws`` draws of
    the continuous latents, the mean of ``E_q[N]`` and, given the true counts, the accuracy of
    ``argmax_n q(N = n | x)`` (first draw); eval mode, global RNG untouched."""
    objective = EnumeratedObjective(1.0, max_steps=max_steps(model.config.to_dict()))
    was = model.training, guide.training
    model.eval()
    guide.eval()
    totals = {"elbo": 0.0, "num_strokes": 0.0}
    try:
        with torch.random.fork_rng(), torch.no_grad(), pyro.validation_enabled(False):
            torch.manual_seed(seed)
            for draw in range(draws):
                _, metrics, tensors = objective.evaluate(model, guide, (images,))
                for key in totals:
                    totals[key] += metrics[key] / draws
                if draw == 0 and truth is not None:
                    mode = tensors["stroke_count_probs"].argmax(1)
                    totals["count_accuracy"] = (mode == truth).double().mean().item()
    finally:
        model.train(was[0])
        guide.train(was[1])
    return totals


def estimator_variances(
    model: nn.Module,
    guide: nn.Module,
    objectives: dict[str, nn.Module | EnumeratedObjective],
    batch: Tensor,
    draws: int,
    seed: int,
) -> dict[str, dict]:
    """Gradient moments of every estimator at the current parameters, on ``batch``."""
    out = {}
    named = named_parameters(model, guide)
    for name, objective in objectives.items():
        if isinstance(objective, nn.Module):
            objective.eval()  # freeze NVIL's running statistics while measuring
        torch.manual_seed(seed)
        pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            moments = gradient_moments(
                lambda o=objective: o(model, guide, (batch,), 0)[0], named, GROUPS, draws
            )
        out[name] = moments.to_dict()
        if isinstance(objective, nn.Module):
            objective.train()
    return out


def train_for(
    trainer: SVITrainer,
    batches: ImageBatches,
    seconds: float,
    evaluate,
    num_evals: int,
) -> list[dict]:
    """Train for ``seconds`` of process time, evaluating at ``num_evals`` equally spaced
    times (evaluation time not counted)."""
    curve = [{"cpu_seconds": 0.0, "step": 0, **evaluate()}]
    spent, next_eval = 0.0, seconds / num_evals
    wall = time.perf_counter()
    trainer.model.train()
    trainer.guide.train()
    while spent < seconds:
        start = time.process_time()
        trainer.train_step(batches.batch(trainer.state.step))
        trainer.state.step += 1
        spent += time.process_time() - start
        if spent >= next_eval or spent >= seconds:
            curve.append({"cpu_seconds": spent, "step": trainer.state.step, **evaluate()})
            print(json.dumps(curve[-1]), flush=True)
            next_eval += seconds / num_evals
    curve[-1]["wall_seconds_with_evaluation"] = time.perf_counter() - wall
    return curve


def plot_curves(runs: dict[str, list[dict]], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, curve in runs.items():
        ax.plot([c["cpu_seconds"] for c in curve], [c["elbo"] for c in curve], "o-", label=name)
    ax.set_xlabel("training CPU seconds (1 thread)")
    ax.set_ylabel("validation ELBO (exact in N), nats")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_options(parser.add_argument_group("comparison options"), ComparisonOptions)
    add_options(
        parser.add_argument_group("training options"),
        RunOptions,
        defaults=RUN_FIELDS,
        choices={"dataset": DATASETS},
        skip=field_names(RunOptions) - set(RUN_FIELDS),
    )
    add_options(
        parser.add_argument_group("DooD/AIR options"),
        DooDOptions,
        skip=field_names(DooDOptions) - set(MODEL_FIELDS),
    )
    return parser


def make_trainer(
    name: str, config: dict, run: RunOptions, options: DooDOptions, images: Tensor, out: Path
) -> tuple[SVITrainer, ImageBatches]:
    """The trainer of one estimator: appendix C's learning-rate groups, the config's objective."""
    model, guide = FAMILY.model(name).build(config)
    train_config = TrainConfig(
        steps=10**9,
        batch_size=run.batch_size,
        lr=run.lr,
        seed=run.seed,
        lr_groups=nvil_lr_groups(guide, options.stop_lr, options.baseline_lr),
    )
    batches = ImageBatches(images, run.batch_size, seed=run.seed)
    trainer = SVITrainer(
        model,
        guide,
        batches,
        train_config,
        out_dir=out,
        checkpoint_extra={"model": name, "model_config": config},
        progress=False,
        objective=stop_objective(config),
    )
    return trainer, batches


def print_report(result: dict) -> None:
    for point, table in result["gradient_variance"].items():
        for group in GROUPS:
            v = {e: table[e]["total_variance"][group] for e in ESTIMATORS}
            snr = {e: table[e]["snr"][group] for e in ESTIMATORS}
            print(
                f"{point:>16} | {group:12} | tr Cov nvil {v['nvil']:.3g}, enum {v['enum']:.3g} "
                f"(ratio {v['nvil'] / max(v['enum'], 1e-30):.3g}) | "
                f"SNR nvil {snr['nvil']:.3g}, enum {snr['enum']:.3g}"
            )
    for est, r in result["estimators"].items():
        print(
            f"{est}: {r['steps']} steps ({r['ms_per_step']:.0f} ms/step), final ELBO "
            f"{r['final_elbo']:.1f}, E[N] {r['final_num_strokes']:.2f}"
            + (f", count accuracy {r['count_accuracy']:.2f}" if "count_accuracy" in r else "")
        )


def run_summary(curve: list[dict], with_truth: bool) -> dict:
    final = curve[-1]
    return {
        "steps": final["step"],
        "ms_per_step": 1000 * final["cpu_seconds"] / max(final["step"], 1),
        "final_elbo": final["elbo"],
        "final_num_strokes": final["num_strokes"],
        **({"count_accuracy": final["count_accuracy"]} if with_truth else {}),
        "curve": curve,
    }


def run_estimators(
    cmp: ComparisonOptions,
    run: RunOptions,
    options: DooDOptions,
    configs: dict[str, dict],
    train_images: Tensor,
    valid: ImageData,
) -> tuple[dict, dict[str, list[dict]], dict]:
    """Both estimators from the same initialisation for the same CPU time; returns the result
    so far, the ELBO curves and the gradient variances at the start and end of the NVIL run."""
    truth = valid.extras.get("num_strokes")
    grad_batch = valid.images[: run.batch_size]
    runs, pairs, result = {}, {}, {"estimators": {}}
    for est in ESTIMATORS:
        torch.manual_seed(run.seed)
        pyro.set_rng_seed(run.seed)
        trainer, batches = make_trainer(
            cmp.model, configs[est], run, options, train_images, Path(run.out) / est
        )
        model, guide, objective = trainer.model, trainer.guide, trainer.objective
        if est == "nvil":
            # NVIL's running statistics start from one batch (as in training); then measure
            # both estimators at the shared initialisation
            with torch.no_grad():
                objective(model, guide, (grad_batch,), 0)
            init_state = {k: v.clone() for k, v in model.state_dict().items()}
            variances_init = estimator_variances(
                model,
                guide,
                {"nvil": objective, "enum": stop_objective({**configs["enum"]})},
                grad_batch,
                cmp.grad_draws,
                run.seed,
            )
        else:
            same = all(torch.equal(init_state[k], v) for k, v in model.state_dict().items())
            result["same_initial_model"] = same

        def evaluate(model=model, guide=guide) -> dict[str, float]:
            return exact_elbo(model, guide, valid.images, cmp.eval_draws, run.seed, truth)

        print(f"== {est}: training for {cmp.seconds:.0f} CPU seconds")
        runs[est] = train_for(trainer, batches, cmp.seconds, evaluate, cmp.num_evals)
        pairs[est] = (model, guide, objective)
        result["estimators"][est] = run_summary(runs[est], truth is not None)
    model, guide, nvil = pairs["nvil"]
    variances_end = estimator_variances(
        model,
        guide,
        {"nvil": nvil, "enum": stop_objective(configs["enum"])},
        grad_batch,
        cmp.grad_draws,
        run.seed,
    )
    return result, runs, {"initialisation": variances_init, "end of nvil run": variances_end}


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    cmp = options_from(ComparisonOptions, args)
    run = options_from(RunOptions, args)
    options = options_from(DooDOptions, args)
    prepare_process(run)
    configs = {
        est: model_config(
            cmp.model,
            run.config,
            dataset=run.dataset,
            image_size=options.image_size,
            stop=est,
            beta=options.beta,
        )
        for est in ESTIMATORS
    }
    size = int(configs["nvil"]["height"])
    load = dict(size=size, seed=run.seed, data_dir=run.data_dir, download=run.download)
    train = load_dood_images(run.dataset, "train", num_examples=options.num_train, **load)
    valid = load_dood_images(run.dataset, "valid", num_examples=cmp.eval_examples, **load)
    result, runs, variances = run_estimators(cmp, run, options, configs, train.images, valid)
    result.update(
        model=cmp.model,
        config=run.config,
        dataset=run.dataset,
        image_size=size,
        beta=configs["nvil"]["beta"],
        seconds_per_estimator=cmp.seconds,
        threads=run.threads,
        batch_size=run.batch_size,
        learning_rates={
            "base": run.lr,
            "stop network": options.stop_lr or run.lr,
            "baseline": options.baseline_lr,
        },
        eval_examples=len(valid),
        eval_draws=cmp.eval_draws,
        gradient_variance=variances,
        command="python examples/dood_stop_estimators.py " + " ".join(argv),
    )
    name = f"dood_stop_estimators_{run.dataset}"
    write_json(result, Path(cmp.results) / f"{name}.json")
    title = f"{cmp.model} ({run.config}) on {run.dataset}: NVIL vs enumerated stroke count"
    plot_curves(runs, title, Path(cmp.figures) / f"{name}.png")
    print_report(result)
    return result


if __name__ == "__main__":
    main()
