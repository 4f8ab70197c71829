"""Training task: data → model/guide → SVI → checkpoint, then test ELBO/IWAE and pictures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inference.checkpoint import load_checkpoint
from inference.trainer import ImageBatches, SVITrainer, TrainConfig, mean_elbo
from tasks.data import load_images
from tasks.evaluate import evaluate_split, format_summary, write_json
from tasks.models import build_model, model_config
from tasks.sample import write_pictures


@dataclass
class TrainJob:
    model: str = "draw"
    config: str = "small"
    dataset: str = "glyphs"
    out: str = "runs/quickstart"
    data_dir: str | None = None
    download: bool = False
    num_train: int | None = None
    num_valid: int = 1000
    resume: str | None = None
    device: str = "cpu"
    iwae_samples: int = 50
    eval_examples: int = 500
    pictures: bool = True
    progress: bool = True


def run_training(job: TrainJob, train_config: TrainConfig) -> dict:
    """Train (or resume) a model; returns the final evaluation dict (also in ``eval.json``)."""
    out = Path(job.out)
    load = dict(data_dir=job.data_dir, download=job.download, seed=train_config.seed)
    train = load_images(job.dataset, "train", num_examples=job.num_train, **load)
    valid = load_images(job.dataset, "valid", num_examples=job.num_valid, **load)
    shape = tuple(train.images.shape[1:])
    if job.resume:
        config = load_checkpoint(job.resume, expected_model=job.model)["model_config"]
    else:
        config = model_config(job.model, job.config, shape)
    model, guide = build_model(job.model, config)
    model.to(job.device)
    guide.to(job.device)
    batches = ImageBatches(
        train.images,
        train_config.batch_size,
        seed=train_config.seed,
        dynamic_binarization=train.binarization == "dynamic",
    )
    valid_x = valid.images.to(job.device)

    def validate() -> dict[str, float]:
        return {"valid_elbo": mean_elbo(model, guide, valid_x, device=job.device)}

    extra = {
        "model": job.model,
        "model_config": config,
        "config_name": job.config,
        "data": {"dataset": job.dataset, "binarization": train.binarization, "info": train.info},
    }
    trainer = SVITrainer(
        model,
        guide,
        batches,
        train_config,
        out_dir=out,
        checkpoint_extra=extra,
        validate=validate,
        device=job.device,
        progress=job.progress,
    )
    trainer.run(job.resume)

    model.eval()
    guide.eval()
    test = load_images(job.dataset, "test", **load)
    result = evaluate_split(
        model.model,
        guide.guide,
        test,
        num_examples=job.eval_examples,
        seed=train_config.seed,
        num_particles=job.iwae_samples,
        device=job.device,
        progress=job.progress,
    )
    result.update(checkpoint=str(trainer.checkpoint_path), step=trainer.state.step)
    write_json(result, out / "eval.json")
    print(format_summary(result))
    if job.pictures:
        for path in write_pictures(model, out, reference=train.images, seed=train_config.seed):
            print(f"wrote {path}")
    return result
