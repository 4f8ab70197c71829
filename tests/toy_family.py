"""A toy model family, exactly as README's "Adding a model family" describes one: a one-latent
Gaussian VAE on the glyphs, with its model, guide, options, training plan and commands.

In a real family the model lives in ``generative/<family>.py``, the guide in
``guides/<family>.py`` and the rest in ``tasks/<family>/__init__.py``; here they share one file so
the test can register it without touching the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from inference.checkpoint import Checkpoint, RunRecord
from inference.trainer import mean_elbo
from tasks.data import load_images
from tasks.data.batches import ImageBatches
from tasks.evaluate import (
    ImageEvaluateOptions,
    evaluate_image_command,
    evaluate_split,
    format_summary,
)
from tasks.family import Command, Family, ModelSpec, TrainPlan, TrainReport
from tasks.figures import save_image_grid
from tasks.options import CheckpointOptions, RunOptions, option, positive

CONFIGS = {"tiny": {"z_size": 2, "hidden": 16}}


class ToyVAE(nn.Module):
    """p(z) = N(0, I), p(x | z) = Bernoulli(MLP(z)) per pixel; site names ``z`` and ``x``."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = config
        c, h, w = config["image_shape"]
        self.decoder = nn.Sequential(
            nn.Linear(config["z_size"], config["hidden"]),
            nn.Tanh(),
            nn.Linear(config["hidden"], c * h * w),
        )

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        pyro.module("toy_model", self)
        n = x.shape[0] if x is not None else batch_size
        shape = tuple(self.config["image_shape"])
        with pyro.plate("data", n):
            loc = torch.zeros(n, self.config["z_size"])
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            logits = self.decoder(z).view(n, *shape)
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def generate(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            z = torch.randn(n, self.config["z_size"])
            return torch.sigmoid(self.decoder(z)).view(n, *self.config["image_shape"])


class ToyGuide(nn.Module):
    """q(z | x) = N(μ(x), σ(x)) from an MLP encoder."""

    def __init__(self, model: ToyVAE):
        super().__init__()
        c, h, w = model.config["image_shape"]
        self.encoder = nn.Linear(c * h * w, 2 * model.config["z_size"])

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        pyro.module("toy_guide", self)
        with pyro.plate("data", x.shape[0]):
            loc, raw = self.encoder(x.flatten(1)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))


def build_toy(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    model = ToyVAE(config)
    return model, ToyGuide(model)


@dataclass
class ToyOptions:
    iwae_samples: int = option(10, "K for the final test IWAE estimate", check=positive)
    eval_examples: int = option(50, "test images for the final evaluation", check=positive)


class ToyPlan(TrainPlan):
    def __init__(
        self, spec: ModelSpec, run: RunOptions, options: ToyOptions, resumed: Checkpoint | None
    ):
        self.run, self.options = run, options
        dataset = resumed.record.dataset if resumed else run.dataset
        self.train = load_images(dataset, "train", num_examples=200, seed=run.seed)
        self.test = load_images(dataset, "test", seed=run.seed)
        config = (
            resumed.model_config
            if resumed
            else {
                **CONFIGS[run.config],
                "image_shape": list(self.train.images.shape[1:]),
            }
        )
        self.record = RunRecord(
            model=spec.name, model_config=config, config_name=run.config, data={"dataset": dataset}
        )
        self.batches = ImageBatches(
            self.train.images, run.batch_size, seed=run.seed, dynamic_binarization=True
        )

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return {"valid_elbo": mean_elbo(model, guide, self.test.images[:50])}

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        return evaluate_split(
            model.model,
            guide.guide,
            self.test,
            num_examples=self.options.eval_examples,
            num_particles=self.options.iwae_samples,
            seed=self.run.seed,
            progress=False,
        )

    def summary(self, result: dict[str, Any]) -> str:
        return format_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        return [save_image_grid(model.generate(8), out / "samples.png", ncols=4)]


@dataclass
class ToySampleOptions(CheckpointOptions):
    num_samples: int = option(8, "samples in the grid", check=positive)


def sample_toy(spec: ModelSpec, checkpoint: Checkpoint, options: ToySampleOptions) -> None:
    model, _ = spec.restore(checkpoint, options.device)
    out = Path(options.out) if options.out else checkpoint.path.parent
    print(f"wrote {save_image_grid(model.generate(options.num_samples), out / 'samples.png')}")


FAMILY = Family(
    name="toy",
    models=(
        ModelSpec(
            name="toy-vae",
            help="a one-latent Gaussian VAE (the README's example family)",
            build=build_toy,
            configs=tuple(CONFIGS),
            default_config="tiny",
            default_dataset="glyphs",
            options=ToyOptions,
        ),
    ),
    plan=ToyPlan,
    datasets=("glyphs",),
    run_defaults={"out": "runs/toy", "steps": 20, "batch_size": 20},
    commands={
        "evaluate": Command(evaluate_image_command, ImageEvaluateOptions),
        "sample": Command(sample_toy, ToySampleOptions),
    },
)
