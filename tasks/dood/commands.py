"""DooD's and AIR's checkpoint commands: ``pyro-draw evaluate|sample|reconstruct|complete``.

``evaluate`` and ``reconstruct`` work on any DooD dataset (``--dataset``: zero-shot transfer,
Fig. 3 / Fig. 4), at the checkpoint's image size; ``complete`` is DooD's only (Fig. 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inference.checkpoint import Checkpoint
from tasks.data.core import ImageData
from tasks.dood.data import PARTIAL_REGIONS, checkpoint_images
from tasks.dood.evaluate import evaluate_with_options, format_dood_summary
from tasks.dood.models import PAPER_IWAE_SAMPLES
from tasks.dood.pictures import write_completions, write_reconstructions, write_samples
from tasks.evaluate import ImageEvaluateOptions, write_evaluation
from tasks.family import ModelSpec
from tasks.options import CheckpointOptions, SplitOptions, option, positive

__all__ = [
    "CompleteOptions",
    "DooDEvaluateOptions",
    "ReconstructOptions",
    "SampleOptions",
    "complete_command",
    "evaluate_command",
    "reconstruct_command",
    "sample_command",
]


class _TemperatureList:
    """For options with ``temperature`` (a list): one number given in Python becomes a list."""

    def __post_init__(self) -> None:
        value = self.temperature  # type: ignore[has-type]
        if isinstance(value, int | float):
            self.temperature = [value]
        super().__post_init__()  # type: ignore[misc]


@dataclass
class DooDEvaluateOptions(ImageEvaluateOptions):
    """``pyro-draw evaluate`` of a DooD/AIR checkpoint: IWAE with K importance samples (the
    paper's K by default) and the inferred stroke counts."""

    iwae_samples: int = option(PAPER_IWAE_SAMPLES, "importance samples K", check=positive)


@dataclass
class SampleOptions(_TemperatureList, CheckpointOptions):
    """``pyro-draw sample`` of a DooD/AIR checkpoint."""

    num_samples: int = option(50, "samples per temperature", check=positive)
    num_sequences: int = option(8, "samples drawn step by step", check=positive)
    temperature: list[float] | None = option(
        None,
        "sampling temperature(s) of DooD's priors (AIR has none)",
        check=positive,
        default_text="DooD 1.0 0.5",
    )


@dataclass
class ReconstructOptions(SplitOptions):
    """``pyro-draw reconstruct`` of a DooD/AIR checkpoint: step-by-step reconstructions."""

    num_examples: int = option(8, "images to reconstruct", check=positive)


@dataclass
class CompleteOptions(_TemperatureList, ReconstructOptions):
    """``pyro-draw complete`` of a DooD checkpoint: completions of partial drawings."""

    num_examples: int = option(6, "partial drawings to complete", check=positive)
    num_samples: int = option(8, "completions per partial drawing", check=positive)
    temperature: list[float] = option([1.0], "sampling temperature(s)", check=positive)
    partial_region: str | None = option(
        None,
        "the partial drawing: top/left half of the image, or the first half of the true strokes",
        choices=PARTIAL_REGIONS,
        default_text="strokes on glyphs, top elsewhere",
    )


def _out_dir(options: CheckpointOptions, checkpoint: Checkpoint) -> Path:
    return options.out_dir(checkpoint.path)


def _data(options: SplitOptions, checkpoint: Checkpoint, num: int | None) -> ImageData:
    return checkpoint_images(
        checkpoint, options, dataset=options.dataset, split=options.split, num_examples=num
    )


def evaluate_command(spec: ModelSpec, checkpoint: Checkpoint, options: DooDEvaluateOptions) -> None:
    """``pyro-draw evaluate CHECKPOINT``: IWAE log p(x), ELBO and stroke counts on a split of the
    training dataset or, with ``--dataset``, another one (zero-shot transfer, Fig. 4)."""
    model, guide = spec.restore(checkpoint, options.device)
    data = _data(options, checkpoint, options.num_examples)
    result = evaluate_with_options(model, guide, data, options)
    result.update(
        model=checkpoint.model,
        config_name=checkpoint.record.config_name,
        trained_on=checkpoint.record.dataset,
        checkpoint=str(checkpoint.path),
        step=checkpoint.step,
    )
    name = f"eval_{data.name}_{options.split}_K{options.iwae_samples}.json"
    write_evaluation(result, options.json_path(checkpoint.path, name), format_dood_summary(result))


def sample_command(spec: ModelSpec, checkpoint: Checkpoint, options: SampleOptions) -> None:
    """``pyro-draw sample CHECKPOINT``: unconditional samples per ``--temperature`` (DooD
    default 1.0 0.5; AIR: its fixed prior) and a step-by-step generation figure."""
    model, _ = spec.restore(checkpoint, options.device)
    for path in write_samples(
        model,
        _out_dir(options, checkpoint),
        num_samples=options.num_samples,
        num_sequences=options.num_sequences,
        temperatures=options.temperature,
        seed=options.seed,
    ):
        print(f"wrote {path}")


def reconstruct_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: ReconstructOptions
) -> None:
    """``pyro-draw reconstruct CHECKPOINT``: step-by-step reconstructions (Fig. 1 / Fig. 3) of
    ``--num-examples`` images of a split, of any DooD dataset (``--dataset``)."""
    _, guide = spec.restore(checkpoint, options.device)
    num = options.num_examples
    data = _data(options, checkpoint, num)
    path = write_reconstructions(
        guide,
        data.images[:num].to(options.device),
        _out_dir(options, checkpoint) / f"reconstruction_{data.name}_{options.split}.png",
        seed=options.seed,
        title=f"{checkpoint.model} trained on {checkpoint.record.dataset}",
    )
    print(f"wrote {path}")


def complete_command(spec: ModelSpec, checkpoint: Checkpoint, options: CompleteOptions) -> None:
    """``pyro-draw complete CHECKPOINT`` (DooD): completions of partial drawings (Fig. 8),
    ``--num-samples`` per example for ``--num-examples`` examples, per ``--temperature``."""
    model, guide = spec.restore(checkpoint, options.device)
    num = options.num_examples
    pool = _data(options, checkpoint, 4 * num)  # glyphs with >= 2 strokes are picked from it
    out = _out_dir(options, checkpoint)
    for tau in options.temperature:
        path, summary = write_completions(
            model,
            guide,
            pool,
            out / f"completion_{pool.name}_{options.split}_T{tau:g}.png",
            region=options.partial_region,
            num_examples=num,
            num_samples=options.num_samples,
            temperature=tau,
            seed=options.seed,
        )
        print(
            f"wrote {path} (partial: {summary['region']}, strokes inferred "
            f"{summary['strokes_inferred_from_partial']}, mean added "
            f"{summary['mean_strokes_added']:.2f})"
        )
