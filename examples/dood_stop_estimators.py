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
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from inference.gradients import gradient_moments  # noqa: E402
from inference.nvil import EnumeratedObjective  # noqa: E402
from inference.trainer import ImageBatches, SVITrainer, TrainConfig  # noqa: E402
from tasks.dood import (  # noqa: E402
    BASE_LR,
    DATASETS,
    MODELS,
    NVIL_LR,
    load_dood_images,
    max_steps,
    model_config,
    nvil_lr_groups,
    stop_objective,
)
from tasks.evaluate import write_json  # noqa: E402

ESTIMATORS = ("nvil", "enum")
GROUPS = {
    "stop network": lambda n: n.startswith("guide.pres_net."),
    "guide": lambda n: n.startswith("guide.") and not n.startswith("guide.baseline."),
    "model": lambda n: n.startswith("model."),
}


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dood", choices=sorted(MODELS))
    parser.add_argument("--config", default="small", help="named config (default: small)")
    parser.add_argument("--dataset", default="glyphs", choices=DATASETS)
    parser.add_argument("--image-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--beta", type=float, default=None, help="default: DooD 4, AIR 5")
    parser.add_argument("--seconds", type=float, default=600.0, help="CPU seconds per estimator")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=BASE_LR, help="appendix C: 1e-4")
    parser.add_argument("--nvil-lr", type=float, default=NVIL_LR, help="appendix C: 1e-3")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--eval-draws", type=int, default=4)
    parser.add_argument("--num-evals", type=int, default=10)
    parser.add_argument("--grad-draws", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/dood_stop_estimators")
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--figures", default="examples/figures")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--download", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    configs = {
        est: model_config(
            args.model,
            args.config,
            dataset=args.dataset,
            image_size=args.image_size,
            stop=est,
            beta=args.beta,
        )
        for est in ESTIMATORS
    }
    size = int(configs["nvil"]["height"])
    load = dict(size=size, seed=args.seed, data_dir=args.data_dir, download=args.download)
    train = load_dood_images(args.dataset, "train", num_examples=args.num_train, **load)
    valid = load_dood_images(args.dataset, "valid", num_examples=args.eval_examples, **load)
    truth = valid.extras.get("num_strokes")
    grad_batch = valid.images[: args.batch_size]

    runs, pairs, result = {}, {}, {"estimators": {}}
    for est in ESTIMATORS:
        torch.manual_seed(args.seed)
        pyro.set_rng_seed(args.seed)
        model, guide = MODELS[args.model].build(configs[est])
        objective = stop_objective(configs[est])
        config = TrainConfig(
            steps=10**9,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            lr_groups=nvil_lr_groups(guide, args.nvil_lr),
        )
        batches = ImageBatches(train.images, args.batch_size, seed=args.seed)
        trainer = SVITrainer(
            model,
            guide,
            batches,
            config,
            out_dir=Path(args.out) / est,
            checkpoint_extra={"model": args.model, "model_config": configs[est]},
            progress=False,
            objective=objective,
        )
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
                args.grad_draws,
                args.seed,
            )
        else:
            same = all(torch.equal(init_state[k], v) for k, v in model.state_dict().items())
            result["same_initial_model"] = same

        def evaluate(model=model, guide=guide) -> dict[str, float]:
            return exact_elbo(model, guide, valid.images, args.eval_draws, args.seed, truth)

        print(f"== {est}: training for {args.seconds:.0f} CPU seconds")
        runs[est] = train_for(trainer, batches, args.seconds, evaluate, args.num_evals)
        pairs[est] = (model, guide, objective)
        final = runs[est][-1]
        result["estimators"][est] = {
            "steps": final["step"],
            "ms_per_step": 1000 * final["cpu_seconds"] / max(final["step"], 1),
            "final_elbo": final["elbo"],
            "final_num_strokes": final["num_strokes"],
            **({"count_accuracy": final["count_accuracy"]} if truth is not None else {}),
            "curve": runs[est],
        }

    model, guide, nvil = pairs["nvil"]
    variances_end = estimator_variances(
        model,
        guide,
        {"nvil": nvil, "enum": stop_objective(configs["enum"])},
        grad_batch,
        args.grad_draws,
        args.seed,
    )
    result.update(
        model=args.model,
        config=args.config,
        dataset=args.dataset,
        image_size=size,
        beta=configs["nvil"]["beta"],
        seconds_per_estimator=args.seconds,
        threads=args.threads,
        batch_size=args.batch_size,
        learning_rates={"base": args.lr, "stop network and baseline": args.nvil_lr},
        eval_examples=len(valid),
        eval_draws=args.eval_draws,
        gradient_variance={"initialisation": variances_init, "end of nvil run": variances_end},
        command="python examples/dood_stop_estimators.py "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
    )
    name = f"dood_stop_estimators_{args.dataset}"
    write_json(result, Path(args.results) / f"{name}.json")
    title = f"{args.model} ({args.config}) on {args.dataset}: NVIL vs enumerated stroke count"
    plot_curves(runs, title, Path(args.figures) / f"{name}.png")
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
    return result


if __name__ == "__main__":
    main()
