"""The learnt-representation study of DooD (Liang et al. 2022, sec. 3.1 "Understanding learned
representations", Fig. 5): ``pyro-draw strokes CHECKPOINT``.

One posterior sample per image gives the strokes the guide infers; each present step
(``z_pres_t = 1``) contributes its flattened ``z_what_t`` — for DooD the ``J`` canonical Bézier
control points (``2·J`` numbers, before the layout ``l_t`` places them), for AIR and
Difference-AIR the part latent ("for AIR, we cluster the corresponding part-representation
latents"). The strokes are clustered with k-means (the paper's headline k = 8) and scored with the
Silhouette Coefficient on the raw features, following Aksan et al. (the paper: 0.21 for DooD,
0.11 for AIR); the figure is a t-SNE plot coloured by cluster, with the strokes nearest each
cluster centre drawn next to it (DooD: the canonical Bézier curve, Eq. 10; AIR: the decoded
glimpse).

scikit-learn is imported when a study runs, not with this module (the CLI imports every family).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn
from tqdm.auto import tqdm

from generative.bezier import bezier_points
from generative.stn import LAYOUT_SIZE, glimpse
from inference.checkpoint import Checkpoint
from tasks.dood.data import checkpoint_images
from tasks.family import ModelSpec
from tasks.figures import prepare_path
from tasks.options import SplitOptions, option, positive
from tasks.results import write_json

__all__ = [
    "PAPER_CLUSTERS",
    "PAPER_SILHOUETTE_K8",
    "InferredStrokes",
    "StrokesOptions",
    "cluster_study",
    "exemplar_kind",
    "figure_k",
    "infer_strokes",
    "stroke_features",
    "strokes_command",
    "write_stroke_figure",
]

PAPER_CLUSTERS: tuple[int, ...] = (5, 8, 10, 15)
PAPER_K = 8  # Fig. 5's k-means clusters
PAPER_SILHOUETTE_K8 = {"dood": 0.21, "air": 0.11}  # sec. 3.1, for reference
MAX_SILHOUETTE = 10_000  # above this many strokes the silhouette uses a seeded subsample
N_INIT = 10  # k-means restarts
NUM_EXEMPLARS = 5  # strokes drawn per cluster
_CURVE_POINTS = 64
_PRES_SITE = re.compile(r"z_pres_(\d+)$")


# ------------------------------------------------------------------------------ strokes
@dataclass(frozen=True)
class InferredStrokes:
    """The present steps of one posterior sample per image: ``features`` (S, D) float64 (the
    flattened ``z_what``), ``image_index`` / ``step_index`` (S,) of each stroke, and its
    ``z_what`` (S, …) and ``z_where`` (S, W) as CPU tensors."""

    features: np.ndarray
    image_index: np.ndarray
    step_index: np.ndarray
    z_what: Tensor
    z_where: Tensor

    @property
    def num_strokes(self) -> int:
        return int(self.features.shape[0])


def _present_sites(trace: pyro.poutine.Trace) -> list[tuple[int, Tensor, Tensor, Tensor]]:
    """``(t, z_pres_t, z_where_t, z_what_t)`` of every step of a guide trace, in step order."""
    steps = []
    for name, node in trace.nodes.items():
        match = _PRES_SITE.match(name)
        if match and node["type"] == "sample":
            t = int(match.group(1))
            where, what = trace.nodes[f"z_where_{t}"], trace.nodes[f"z_what_{t}"]
            steps.append((t, node["value"], where["value"], what["value"]))
    if not steps:
        raise ValueError("the guide's trace has no 'z_pres_{t}' sites")
    return sorted(steps, key=lambda s: s[0])


def infer_strokes(
    guide: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> InferredStrokes:
    """One guide sample per image (seeded by ``seed``, batches of ``batch_size``, no gradients)
    and its present strokes (:class:`InferredStrokes`); site names are read from the trace, so
    any guide with ``z_pres_{t}`` / ``z_where_{t}`` / ``z_what_{t}`` sites works."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, found {batch_size}")
    if images.shape[0] == 0:
        raise ValueError("no images to infer strokes from")
    device = next(guide.parameters()).device
    pyro.set_rng_seed(seed)
    what, where, image_index, step_index = [], [], [], []
    starts = range(0, images.shape[0], batch_size)
    with torch.no_grad(), pyro.validation_enabled(False):
        for start in tqdm(starts, desc="inferring strokes", unit="batch", disable=not progress):
            batch = images[start : start + batch_size].to(device)
            trace = pyro.poutine.trace(guide.guide).get_trace(batch)
            for t, z_pres, z_where, z_what in _present_sites(trace):
                rows = (z_pres > 0.5).nonzero().squeeze(-1)
                what.append(z_what[rows].cpu())
                where.append(z_where[rows].cpu())
                image_index.append(rows.cpu() + start)
                step_index.append(torch.full((len(rows),), t))
    z_what, z_where = torch.cat(what), torch.cat(where)
    image_idx, step_idx = torch.cat(image_index).numpy(), torch.cat(step_index).numpy()
    order = np.lexsort((step_idx, image_idx))  # image-major: image 0's strokes by step, …
    rows = torch.as_tensor(order, dtype=torch.long)
    return InferredStrokes(
        features=z_what[rows].flatten(1).double().numpy(),
        image_index=image_idx[order],
        step_index=step_idx[order],
        z_what=z_what[rows],
        z_where=z_where[rows],
    )


def stroke_features(
    guide: nn.Module, images: Tensor, batch_size: int = 256, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features (S, D), image_index (S,), step_index (S,))`` of the present strokes of one
    posterior sample per image (DooD Fig. 5): ``D = 2·J`` canonical control points for DooD,
    ``z_what_size`` for AIR (:func:`infer_strokes`)."""
    strokes = infer_strokes(guide, images, batch_size=batch_size, seed=seed)
    return strokes.features, strokes.image_index, strokes.step_index


# ------------------------------------------------------------------------------ clustering
def _clusters(ks: Any) -> list[int]:
    out = sorted({int(k) for k in ks})
    if not out or out[0] < 2:
        raise ValueError(f"numbers of clusters must be >= 2, found {list(ks)}")
    return out


def _by_size(labels: np.ndarray, centres: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Relabel clusters by decreasing size (ties: k-means' order), so cluster 0 is the largest."""
    sizes = np.bincount(labels, minlength=k)
    rank = np.argsort(-sizes, kind="stable")
    new = np.empty(k, dtype=np.int64)
    new[rank] = np.arange(k)
    return new[labels], centres[rank]


def cluster_study(
    features: np.ndarray,
    ks: Any = PAPER_CLUSTERS,
    *,
    seed: int = 0,
    max_silhouette: int = MAX_SILHOUETTE,
) -> dict[str, Any]:
    """k-means (``n_init=10``, ``random_state=seed``) of ``features`` (S, D) for each k and the
    Silhouette Coefficient of each clustering on the raw features (DooD sec. 3.1, Fig. 5; on a
    seeded subsample of ``max_silhouette`` strokes when S is larger).

    Returns ``ks``, ``num_points``, ``feature_dim``, ``silhouette_sample_size`` (``None``: all)
    and per k: ``silhouette`` (``None`` when k-means found fewer than 2 distinct clusters),
    ``cluster_sizes`` and ``inertia``, and the arrays ``labels`` (S,) and ``centres`` (k, D);
    clusters are numbered by decreasing size."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"features must have shape (strokes, D), found {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain non-finite values")
    ks = _clusters(ks)
    n = x.shape[0]
    if n <= ks[-1]:
        raise ValueError(
            f"{n} present strokes are too few for k-means with k={ks[-1]} "
            f"(need at least {ks[-1] + 1}); use more images or smaller --clusters"
        )
    sample_size = max_silhouette if n > max_silhouette else None
    result: dict[str, Any] = dict(
        ks=ks, num_points=n, feature_dim=x.shape[1], silhouette_sample_size=sample_size
    )
    for key in ("silhouette", "cluster_sizes", "inertia", "labels", "centres"):
        result[key] = {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(x)
        labels, centres = _by_size(km.labels_, km.cluster_centers_, k)
        score = None
        if len(np.unique(labels)) >= 2:
            score = float(silhouette_score(x, labels, sample_size=sample_size, random_state=seed))
        result["silhouette"][k] = score
        result["cluster_sizes"][k] = np.bincount(labels, minlength=k).tolist()
        result["inertia"][k] = float(km.inertia_)
        result["labels"][k] = labels
        result["centres"][k] = centres
    return result


def figure_k(ks: Any) -> int:
    """The k of the figure: the paper's 8 if studied, else the studied k nearest it."""
    return min(_clusters(ks), key=lambda k: (abs(k - PAPER_K), k))


# ------------------------------------------------------------------------------ figure
def exemplar_kind(model: nn.Module, strokes: InferredStrokes) -> str:
    """How exemplar strokes are drawn: ``curve`` (DooD's spline renderer: the canonical Bézier
    curve of ``z_what``), ``glimpse`` (a model with ``decode(z_what)``, AIR) or ``crop`` (the
    source image at the stroke's layout, e.g. DooD-δR)."""
    config = getattr(model, "config", None)
    if strokes.z_what.shape[-1:] == (2,) and getattr(config, "renderer", None) == "spline":
        return "curve"
    if callable(getattr(model, "decode", None)):
        return "glimpse"
    return "crop"


def _exemplars(labels: np.ndarray, centres: np.ndarray, x: np.ndarray, num: int) -> list:
    """Per cluster, the indices of its ``num`` members nearest its centre."""
    out = []
    for c, centre in enumerate(centres):
        members = np.flatnonzero(labels == c)
        dist = np.linalg.norm(x[members] - centre, axis=1)
        out.append(members[np.argsort(dist, kind="stable")[:num]])
    return out


def _pictures(
    kind: str, model: nn.Module, strokes: InferredStrokes, images: Tensor, rows: np.ndarray
) -> np.ndarray:
    """``(len(rows), G, G)`` grey pictures of strokes ``rows`` (kinds ``glimpse``/``crop``)."""
    index = torch.as_tensor(rows, dtype=torch.long)
    with torch.no_grad():
        if kind == "glimpse":
            device = next(model.parameters()).device
            pics = model.decode(strokes.z_what[index].to(device))
        else:
            source = images[torch.as_tensor(strokes.image_index[rows], dtype=torch.long)]
            where = strokes.z_where[index].to(source)
            size = int(getattr(getattr(model, "config", None), "glimpse_size", source.shape[-1]))
            pics = glimpse(source, where, size) if where.shape[-1] == LAYOUT_SIZE else source
    return pics[:, 0].float().cpu().numpy()


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(1.0, (len(x) - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def write_stroke_figure(
    path: str | Path,
    model: nn.Module,
    strokes: InferredStrokes,
    images: Tensor,
    labels: np.ndarray,
    centres: np.ndarray,
    *,
    tsne_points: int = 3000,
    seed: int = 0,
    exemplars: int = NUM_EXEMPLARS,
    title: str = "",
) -> tuple[Path, dict[str, Any]]:
    """Fig. 5: a t-SNE plot of a seeded subsample of at most ``tsne_points`` strokes coloured by
    their k-means cluster (``labels``, ``centres``), and per cluster the ``exemplars`` strokes
    nearest its centre (:func:`exemplar_kind`; curves with the y axis pointing down, as in
    images, and a dot at the start). Returns the written path and the figure's settings."""
    x = strokes.features
    k = len(centres)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(x), size=min(len(x), tsne_points), replace=False))
    embedded = _tsne(x[shown], seed)
    kind = exemplar_kind(model, strokes)
    nearest = _exemplars(labels, centres, x, exemplars)
    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    colours = [cmap(c % cmap.N) for c in range(k)]

    fig = Figure(figsize=(6.5 + 1.1 * exemplars, max(5.0, 0.85 * k + 0.8)), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[6.0, 1.1 * exemplars], wspace=0.08)
    ax = fig.add_subplot(grid[0])
    marker = float(np.clip(20_000 / len(shown), 3.0, 40.0))  # point area, by density
    for c in range(k):
        sel = labels[shown] == c
        ax.scatter(*embedded[sel].T, s=marker, color=colours[c], alpha=0.7, linewidths=0)
        if sel.any():
            cx, cy = np.median(embedded[sel], axis=0)
            box = dict(boxstyle="round,pad=0.15", facecolor="white", alpha=0.7, linewidth=0)
            ax.text(cx, cy, str(c), fontsize=10, weight="bold", ha="center", va="center", bbox=box)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\nt-SNE of {len(shown)} of {len(x)} strokes, k-means k={k}", fontsize=9)

    cells = grid[1].subgridspec(k, exemplars, hspace=0.15, wspace=0.1)
    sizes = np.bincount(labels, minlength=k)
    lim = 1.0
    if kind == "curve":  # one square canonical frame ±lim that fits every exemplar
        used = torch.as_tensor(np.concatenate(nearest), dtype=torch.long)
        lim = max(0.05, float(strokes.z_what[used].abs().max()))
    for c in range(k):
        if kind == "curve":
            rows = torch.as_tensor(nearest[c], dtype=torch.long)
            pics = bezier_points(strokes.z_what[rows].double(), _CURVE_POINTS).numpy()
        else:
            pics = _pictures(kind, model, strokes, images, nearest[c])
        for e in range(exemplars):
            cell = fig.add_subplot(cells[c, e])
            cell.set_xticks([])
            cell.set_yticks([])
            for spine in cell.spines.values():
                spine.set_color(colours[c])
            if e == 0:
                cell.set_ylabel(f"{c} ({sizes[c]})", fontsize=7, color=colours[c])
            if c == 0 and e == 0:
                about = {
                    "curve": f"canonical Bézier curves (dot: start), axes ±{lim:.2g}",
                    "glimpse": "decoded glimpses",
                    "crop": "the source image at the stroke's layout",
                }[kind]
                cell.set_title(f"nearest the cluster centres:\n{about}", fontsize=8, loc="left")
            if e >= len(nearest[c]):
                cell.set_axis_off()
                continue
            if kind == "curve":
                curve = pics[e]
                cell.plot(curve[:, 0], curve[:, 1], color="black", linewidth=1.2)
                cell.plot(curve[0, 0], curve[0, 1], "o", color=colours[c], ms=2.5)
                cell.set_xlim(-1.05 * lim, 1.05 * lim)
                cell.set_ylim(1.05 * lim, -1.05 * lim)  # y points down, as in images
                cell.set_aspect("equal")
            else:
                cell.imshow(pics[e], cmap="gray", vmin=0.0, interpolation="nearest")
    out = prepare_path(path)
    try:
        fig.savefig(out)
    finally:
        fig.clear()
    return out, {"tsne_points": int(len(shown)), "exemplar_kind": kind, "exemplars": exemplars}


# ------------------------------------------------------------------------------ command
def _cluster_count(value: Any) -> None:
    """a number of clusters >= 2"""
    if value is not None and value < 2:
        raise ValueError(f"expected a number of clusters >= 2, found {value!r}")


@dataclass
class StrokesOptions(SplitOptions):
    """``pyro-draw strokes`` of a DooD/AIR checkpoint: k-means clusters of the inferred strokes,
    their silhouette and a t-SNE figure (DooD Fig. 5)."""

    split: str = option(
        "train",
        "data split (the paper clusters the training set's strokes)",
        choices=("train", "valid", "test"),
    )
    num_examples: int | None = option(
        None,
        "cluster the strokes of a seeded subset of this many images",
        check=positive,
        default_text="all images of the split",
    )
    clusters: list[int] = option(
        list(PAPER_CLUSTERS), "numbers of k-means clusters k (the paper's: 8)", check=_cluster_count
    )
    tsne_points: int = option(3000, "strokes in the t-SNE plot (a seeded subset)", check=positive)
    batch_size: int = option(256, "images per inference batch", check=positive)


def strokes_command(spec: ModelSpec, checkpoint: Checkpoint, options: StrokesOptions) -> None:
    """``pyro-draw strokes CHECKPOINT``: cluster the strokes (DooD) or parts (AIR) inferred on a
    split with k-means for each ``--clusters`` k; print and write the silhouettes and cluster
    sizes (``strokes_<dataset>_<split>.json``) and the t-SNE figure (``….png``, DooD Fig. 5)."""
    model, guide = spec.restore(checkpoint, options.device)
    data = checkpoint_images(
        checkpoint,
        options,
        dataset=options.dataset,
        split=options.split,
        num_examples=options.num_examples,
    )
    strokes = infer_strokes(
        guide,
        data.images,
        batch_size=options.batch_size,
        seed=options.seed,
        progress=options.progress,
    )
    study = cluster_study(strokes.features, options.clusters, seed=options.seed)
    out = options.out_dir(checkpoint.path)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"strokes_{data.name}_{options.split}"
    k = figure_k(study["ks"])
    png, figure = write_stroke_figure(
        out / f"{stem}.png",
        model,
        strokes,
        data.images,
        study["labels"][k],
        study["centres"][k],
        tsne_points=options.tsne_points,
        seed=options.seed,
        title=f"{checkpoint.model} (trained on {checkpoint.record.dataset}), "
        f"{data.name}/{options.split}",
    )
    num_images = int(data.images.shape[0])
    result = dict(
        model=checkpoint.model,
        checkpoint=str(checkpoint.path),
        step=checkpoint.step,
        dataset=data.name,
        split=options.split,
        num_images=num_images,
        num_strokes=strokes.num_strokes,
        mean_strokes_per_image=strokes.num_strokes / max(num_images, 1),
        feature_dim=study["feature_dim"],
        silhouette=study["silhouette"],
        cluster_sizes=study["cluster_sizes"],
        inertia=study["inertia"],
        paper_silhouette_k8=PAPER_SILHOUETTE_K8,
        settings=dict(
            features="flattened z_what of the present steps, one posterior sample per image",
            clusters=study["ks"],
            kmeans_n_init=N_INIT,
            seed=options.seed,
            silhouette_sample_size=study["silhouette_sample_size"],
            figure_k=k,
            **figure,
        ),
    )
    path = out / f"{stem}.json"
    write_json(result, path)
    print(
        f"{checkpoint.model} on {data.name}/{options.split}: {strokes.num_strokes} strokes of "
        f"{num_images} images, {study['feature_dim']}-d features"
    )
    for kk in study["ks"]:
        score = study["silhouette"][kk]
        text = "n/a" if score is None else f"{score:.3f}"
        print(f"k={kk}: silhouette {text}, cluster sizes {study['cluster_sizes'][kk]}")
    print(f"(paper, k=8: DooD 0.21, AIR 0.11)\nwrote {path}\nwrote {png}")
