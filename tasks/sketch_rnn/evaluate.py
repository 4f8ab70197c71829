"""sketch-rnn's evaluation: ``L_R``, ``L_KL`` and the IWAE ``log p(S)`` of a split.

:func:`evaluate_sketch_split` — ``L_R`` and ``L_KL`` (Eqs. 9–10, one ``z ~ q`` per sketch, the
paper's Table 1 numbers; also ``L_R_n_s``, the reference code's evaluation reading of ``L_R``, whose
pen term skips the rows after ``N_s``) and the IWAE estimate of ``log p(S)`` in nats per sketch
through the generic :func:`tasks.evaluate.evaluate_log_likelihood` (the model derives ``N_s`` from
the padded batch, so it needs no adapter). Offsets are in units of the training scale factor: a
density over pixel offsets is ``log p − 2 N_s log(scale_factor)``. The decoder-only model has no
latent, so its "IWAE" is the exact log-likelihood (``K = 1``). ``pyro-draw evaluate CHECKPOINT`` of
a sketch-rnn checkpoint is :func:`evaluate_command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch

from generative.sketch_rnn import SketchRNN
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import traced_loss_terms
from inference.checkpoint import Checkpoint
from tasks.data.stroke_formats import pad_batch
from tasks.data.strokes import StrokeData
from tasks.evaluate import evaluate_log_likelihood, stderr, write_evaluation
from tasks.family import ModelSpec
from tasks.options import EvaluateOptions, non_negative, option
from tasks.sketch_rnn.data import checkpoint_data, subset

__all__ = [
    "SketchEvaluateOptions",
    "evaluate_command",
    "evaluate_sketch_split",
    "format_sketch_summary",
    "sketch_losses",
]

#: floats held by one evaluation chunk (decoder activations), bounding IWAE memory (~200 MB)
_EVAL_FLOATS = 50_000_000


def sketch_losses(
    model: SketchRNN,
    guide: SketchRNNGuide,
    sequences: Sequence[np.ndarray],
    *,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Per-sketch ``L_R``, ``L_KL`` (Eqs. 9–10, one ``z ~ q(z | S)`` each), the one-sample
    ELBO in nats and ``L_R_n_s``: the same draw's ``L_R`` with the pen term summed over the
    ``N_s`` sketch rows only, as the reference code's evaluation model
    (:meth:`generative.strokes.StrokeSequence.log_prob_terms`); without gradients, in the
    modules' current mode."""
    out: dict[str, list] = {"L_R": [], "L_KL": [], "elbo": [], "L_R_n_s": []}
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            x5, lengths = pad_batch(sequences[start : start + batch_size], model.config.max_length)
            terms, trace = traced_loss_terms(model, guide, (x5.to(device), lengths.to(device)))
            strokes = trace.nodes["strokes"]
            l_r_n_s = strokes["fn"].reconstruction_loss(strokes["value"], pen_rows="n_s")
            out["L_R"].append(terms.reconstruction_loss.cpu().numpy())
            out["L_KL"].append(terms.kl_loss.cpu().numpy())
            out["elbo"].append(terms.elbo.cpu().numpy())
            out["L_R_n_s"].append(l_r_n_s.cpu().numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def evaluate_sketch_split(
    model: SketchRNN,
    guide: SketchRNNGuide,
    data: StrokeData,
    *,
    w_kl: float = 1.0,
    num_examples: int | None = None,
    iwae_samples: int = 100,
    batch_size: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Test-set numbers of a trained sketch-rnn on a fixed random subset of ``data``:
    ``L_R``, ``L_KL`` and ``loss = L_R + w_KL L_KL`` (appendix Eq. 3), the ELBO and the IWAE
    ``log p(S)`` (``iwae_samples`` = K; 0 skips it), both in nats per sketch, and ``per_sketch``
    ``L_R`` and ``L_KL`` lists. JSON-ready."""
    c = model.config
    if data.scale_factor != c.scale_factor and c.scale_factor is not None:
        raise ValueError(
            f"evaluate_sketch_split: data normalised by {data.scale_factor}, the model was "
            f"trained with scale_factor {c.scale_factor}; load it with scale_factor=that value"
        )
    model.eval()
    guide.eval()
    sequences = subset(data, num_examples, seed)
    torch.manual_seed(seed)
    losses = sketch_losses(model, guide, sequences, batch_size=batch_size, device=device)
    result: dict[str, Any] = {
        "dataset": data.name,
        "split": data.split,
        "num_examples": len(sequences),
        "max_length": c.max_length,
        "scale_factor": c.scale_factor,
        "w_kl": w_kl,
        "L_R": float(losses["L_R"].mean()),
        "L_R_stderr": stderr(losses["L_R"]),
        # the reference code's evaluation reading of the same draws: pen term over N_s rows
        "L_R_n_s": float(losses["L_R_n_s"].mean()),
        "L_R_n_s_stderr": stderr(losses["L_R_n_s"]),
        "L_KL": float(losses["L_KL"].mean()),
        "L_KL_stderr": stderr(losses["L_KL"]),
        "loss": float((losses["L_R"] + w_kl * losses["L_KL"]).mean()),
        "elbo_nats_per_sketch": float(losses["elbo"].mean()),
        "units": "offsets divided by scale_factor; L_R, L_KL per N_max and N_z (Eqs. 9-10); "
        "L_R_n_s: L_R with the pen term over the N_s sketch rows (magenta's eval model)",
        # per sketch, in the subset's order (the same sketches for every model at this seed), so
        # that two models can be compared by paired differences
        "per_sketch": {k: losses[k].tolist() for k in ("L_R", "L_KL", "L_R_n_s")},
    }
    if iwae_samples > 0:
        k = iwae_samples if c.conditional else 1
        width = c.dec_hidden + 6 * c.num_mixtures + 3 + c.hyper_hidden * (c.cell == "hyper")
        rows = max(1, _EVAL_FLOATS // (c.max_length * width))
        eval_batch = min(batch_size, rows)
        x5, _ = pad_batch(sequences, c.max_length)
        iwae = evaluate_log_likelihood(
            model.model,
            guide.guide,
            x5,
            num_particles=k,
            batch_size=eval_batch,
            chunk_size=max(1, rows // eval_batch),
            device=device,
            progress=progress,
            seed=seed,
        )
        iwae.pop("per_example")
        result["iwae"] = iwae
        result["log_likelihood_nats_per_sketch"] = iwae["log_likelihood"]
        result["iwae_samples"] = k
    return result


def format_sketch_summary(result: dict[str, Any]) -> str:
    """The printed line of :func:`evaluate_sketch_split`'s result."""
    line = (
        f"{result['dataset']}/{result['split']} (N={result['num_examples']}): "
        f"L_R {result['L_R']:.3f} (pen over N_s rows: {result['L_R_n_s']:.3f}), "
        f"L_KL {result['L_KL']:.3f}, loss {result['loss']:.3f} "
        f"(w_KL {result['w_kl']}); ELBO {result['elbo_nats_per_sketch']:.2f} nats/sketch"
    )
    if "iwae" in result:
        line += (
            f"; log p(S) ≥ {result['log_likelihood_nats_per_sketch']:.2f} nats/sketch "
            f"(IWAE K={result['iwae_samples']})"
        )
    return line


@dataclass
class SketchEvaluateOptions(EvaluateOptions):
    """``pyro-draw evaluate`` of a sketch-rnn checkpoint: L_R, L_KL and IWAE with K samples."""

    iwae_samples: int = option(
        200, "importance samples K (0: skip the IWAE estimate)", check=non_negative
    )


def evaluate_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: SketchEvaluateOptions
) -> None:
    """``pyro-draw evaluate CHECKPOINT``: L_R, L_KL and IWAE nats per sketch, written to
    ``eval_<dataset>_<split>_K<K>.json`` next to the checkpoint (or ``--json``)."""
    pyro.enable_validation(False)
    model, guide = spec.restore(checkpoint, options.device)
    data = checkpoint_data(
        checkpoint, model.config, options, dataset=options.dataset, split=options.split
    )
    result = evaluate_sketch_split(
        model,
        guide,
        data,
        w_kl=float(checkpoint.record.objective.get("w_kl", 1.0)),
        num_examples=options.num_examples,
        iwae_samples=options.iwae_samples,
        batch_size=options.batch_size,
        seed=options.seed,
        device=options.device,
        progress=options.progress,
    )
    result.update(checkpoint=str(checkpoint.path), step=checkpoint.step, model=checkpoint.model)
    name = data.name.replace("/", "_")
    path = options.json_path(
        checkpoint.path, f"eval_{name}_{options.split}_K{options.iwae_samples}.json"
    )
    write_evaluation(result, path, format_sketch_summary(result))
