"""RAM playing "Catch" (Mnih et al. 2014, sec. 4.2) within a CPU budget.

Trains the paper's agent (6×6 retina at 3 scales, 256 LSTM units, 3 game actions) from the
final reward alone with REINFORCE and a learned baseline, then reports its catch rate on new
games (greedy and sampled policy) beside the paper's "roughly 85%" (after 20 million frames)
and the exact catch rate of a uniformly random paddle (the chance reference, 1/12). Writes
``examples/results/ram_catch.json`` and, in ``--out``, the checkpoint and a filmstrip of one
greedy game with its glimpse boxes (``catch_episode.png``).

    python examples/ram_catch.py --max-seconds 150 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from inference.trainer import TrainConfig
from tasks.catch import (
    PAPER_CATCH_RATE,
    CatchTrainJob,
    evaluate_agent,
    load_agent,
    run_catch_training,
    save_filmstrip,
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="upper bound on steps")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="training wall time")
    parser.add_argument("--batch-size", type=int, default=64, help="games per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-norm", type=float, default=10.0)
    parser.add_argument("--location-std", type=float, default=None)
    parser.add_argument(
        "--location-lr",
        type=float,
        default=None,
        help="learning rate of the location network f_l (default: --lr)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-games", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--out", default="runs/ram_catch")
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        clip_norm=args.clip_norm if args.clip_norm > 0 else None,
        seed=args.seed,
        log_every=25,
        validate_every=250,
        checkpoint_every=250,
        max_seconds=args.max_seconds,
        lr_groups={} if args.location_lr is None else {"model.locator.": args.location_lr},
    )
    job = CatchTrainJob(
        out=str(out),
        resume=args.resume,
        location_std=args.location_std,
        eval_games=200,  # a quick check; the reported numbers come from below
        progress=not args.no_progress,
    )
    quick = run_catch_training(job, config)

    agent, ckpt = load_agent(out / "checkpoint.pt")
    eval_seed = 12345
    result = evaluate_agent(agent, args.eval_games, seed=eval_seed)
    steps = int(ckpt["step"])
    frames_per_game = agent.config.screen_size - 1  # the 23 screens x_1 … x_23 acted on
    result.update(
        experiment="RAM playing Catch (Mnih et al. 2014, sec. 4.2)",
        model_config=ckpt["model_config"],
        steps=steps,
        batch_size=args.batch_size,
        games_trained=steps * args.batch_size,
        frames_trained=steps * args.batch_size * frames_per_game,
        paper_frames=20_000_000,
        paper_catch_rate=PAPER_CATCH_RATE,
        train_seconds=quick["train_seconds"],
        threads=torch.get_num_threads(),
        command="python examples/ram_catch.py " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "ram_catch.json").write_text(json.dumps(result, indent=1) + "\n")
    figure, _ = save_filmstrip(agent, out / "catch_episode.png", seed=eval_seed)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "catch_rate_greedy",
                    "catch_rate_sampled",
                    "random_policy_catch_rate",
                    "paper_catch_rate",
                    "steps",
                    "frames_trained",
                )
            },
            indent=1,
        )
    )
    print(f"wrote {results / 'ram_catch.json'} and {figure}")
    return result


if __name__ == "__main__":
    main()
