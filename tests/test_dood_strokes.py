"""DooD's learnt-representation study (tasks/dood/strokes.py, Fig. 5): stroke features, k-means
with silhouettes, and ``pyro-draw strokes``."""

from __future__ import annotations

import json

import numpy as np
import pyro
import pytest
import torch

import tasks.cli
from generative.air import AirConfig
from generative.dood_config import DooDConfig
from inference.checkpoint import save_checkpoint
from tasks.dood import FAMILY
from tasks.dood.data import load_dood_images
from tasks.dood.models import build_dood
from tasks.dood.strokes import (
    InferredStrokes,
    cluster_study,
    exemplar_kind,
    infer_strokes,
    stroke_features,
    write_stroke_figure,
)
from tests.tiny import AIR_TINY, tiny_dood

SIZE = 16
DOOD_TINY = tiny_dood(SIZE, hidden=16, render_points=20)
JSON_KEYS = {
    "model",
    "checkpoint",
    "step",
    "dataset",
    "split",
    "num_images",
    "num_strokes",
    "feature_dim",
    "silhouette",
    "cluster_sizes",
    "paper_silhouette_k8",
    "settings",
}


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _blobs(num_per: int, k: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 10.0, size=(k, dim))
    truth = np.repeat(np.arange(k), num_per)
    return centres[truth] + rng.normal(0.0, 0.5, size=(k * num_per, dim)), truth


def test_cluster_study_separates_blobs_and_not_noise() -> None:
    x, truth = _blobs(60, 8, 10, seed=0)
    study = cluster_study(x, (5, 8, 10), seed=0)
    assert study["ks"] == [5, 8, 10] and study["num_points"] == 480 and study["feature_dim"] == 10
    assert study["silhouette"][8] > 0.7
    assert study["silhouette"][8] > max(study["silhouette"][5], study["silhouette"][10])
    for k in (5, 8, 10):
        sizes = study["cluster_sizes"][k]
        assert len(sizes) == k and sum(sizes) == 480
        assert sizes == sorted(sizes, reverse=True)  # numbered by decreasing size
        assert np.array_equal(np.bincount(study["labels"][k], minlength=k), sizes)
    assert study["cluster_sizes"][8] == [60] * 8
    # k = 8 recovers the blobs: every true blob lies in one cluster
    labels = study["labels"][8]
    assert all(len(np.unique(labels[truth == b])) == 1 for b in range(8))
    assert study["silhouette_sample_size"] is None
    noise = np.random.default_rng(1).normal(size=(480, 10))
    assert cluster_study(noise, (8,), seed=0)["silhouette"][8] < 0.4


def test_cluster_study_subsamples_the_silhouette_and_refuses_too_few_points() -> None:
    x, _ = _blobs(40, 3, 4, seed=2)
    study = cluster_study(x, [3, 2, 3], seed=0, max_silhouette=50)
    assert study["ks"] == [2, 3] and study["silhouette_sample_size"] == 50
    again = cluster_study(x, [3], seed=0, max_silhouette=50)
    assert again["silhouette"][3] == study["silhouette"][3]  # seeded subsample
    assert study["silhouette"][3] > 0.7
    with pytest.raises(ValueError, match="7 present strokes are too few for k-means with k=8"):
        cluster_study(x[:7], (2, 8))
    with pytest.raises(ValueError, match=">= 2"):
        cluster_study(x, (1, 3))


def _tiny_dood(continue_logit: float) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model, guide = build_dood(DooDConfig(**DOOD_TINY).to_dict())
    with torch.no_grad():  # presence probability σ(logit) at every step
        guide.pres_net.init_output(continue_logit)
    return model.eval(), guide.eval()


def test_stroke_features_keep_the_present_steps_only() -> None:
    model, guide = _tiny_dood(0.3)
    images = load_dood_images("glyphs", "train", size=SIZE, num_examples=20, seed=0).images
    features, image_index, step_index = stroke_features(guide, images, batch_size=20, seed=5)
    pyro.set_rng_seed(5)
    with torch.no_grad():
        trace = pyro.poutine.trace(guide.guide).get_trace(images)
    T, J = model.config.max_strokes, model.config.control_points
    pres = torch.stack([trace.nodes[f"z_pres_{t}"]["value"] for t in range(T)], 1)
    assert 0 < pres.sum() < pres.numel()  # some steps absent: the filter matters
    assert features.shape == (int(pres.sum()), 2 * J) and features.dtype == np.float64
    assert np.all(pres[image_index, step_index].numpy() == 1)
    for s in (0, len(features) - 1):
        what = trace.nodes[f"z_what_{step_index[s]}"]["value"][image_index[s]]
        assert np.allclose(features[s], what.flatten().numpy())
    # batched: every image's stroke count is a present prefix of its steps
    _, idx, steps = stroke_features(guide, images, batch_size=7, seed=5)
    counts = np.bincount(idx, minlength=20)
    assert all(list(steps[idx == i]) == list(range(counts[i])) for i in range(20))


def test_air_features_are_its_part_latents_and_exemplars_decoded_glimpses(tmp_path) -> None:
    torch.manual_seed(0)
    model, guide = FAMILY.model("air").build(AirConfig(**AIR_TINY).to_dict())
    with torch.no_grad():
        guide.pres_net.init_output(3.0)
    images = load_dood_images("glyphs", "train", size=SIZE, num_examples=6, seed=0).images
    strokes = infer_strokes(guide.eval(), images, batch_size=4, seed=0)
    assert isinstance(strokes, InferredStrokes)
    assert strokes.features.shape[1] == AIR_TINY["z_what_size"] and strokes.num_strokes >= 4
    assert exemplar_kind(model, strokes) == "glimpse"
    study = cluster_study(strokes.features, (3,), seed=0)
    path, settings = write_stroke_figure(
        tmp_path / "air.png",
        model.eval(),
        strokes,
        images,
        study["labels"][3],
        study["centres"][3],
        tsne_points=10,
        exemplars=2,
    )
    assert path.stat().st_size > 1000
    assert settings == {"tsne_points": 10, "exemplar_kind": "glimpse", "exemplars": 2}


def _dood_checkpoint(tmp_path, continue_logit: float):
    model, guide = _tiny_dood(continue_logit)
    return save_checkpoint(
        {
            "model": "dood",
            "model_config": model.config.to_dict(),
            "model_state": model.state_dict(),
            "guide_state": guide.state_dict(),
            "step": 7,
            "data": {"dataset": "glyphs"},
        },
        tmp_path / "checkpoint.pt",
    )


def test_strokes_command_writes_json_and_figure(tmp_path, capsys) -> None:
    path = _dood_checkpoint(tmp_path, 3.0)
    argv = ["strokes", str(path), "--num-examples", "8", "--clusters", "2", "3"]
    argv += ["--tsne-points", "12", "--batch-size", "5", "--no-progress"]
    assert tasks.cli.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "k=2: silhouette" in printed and "k=3: silhouette" in printed
    result = json.loads((tmp_path / "strokes_glyphs_train.json").read_text())
    assert JSON_KEYS <= set(result)
    assert result["model"] == "dood" and result["step"] == 7 and result["split"] == "train"
    assert (
        result["num_images"] == 8
        and result["feature_dim"] == 2 * DooDConfig(**DOOD_TINY).control_points
    )
    assert set(result["silhouette"]) == {"2", "3"}
    assert all(-1.0 <= v <= 1.0 for v in result["silhouette"].values())
    assert [sum(result["cluster_sizes"][k]) for k in ("2", "3")] == [result["num_strokes"]] * 2
    assert result["paper_silhouette_k8"] == {"dood": 0.21, "air": 0.11}
    settings = result["settings"]
    assert settings["figure_k"] == 3 and settings["exemplar_kind"] == "curve"
    assert settings["tsne_points"] == 12 and settings["clusters"] == [2, 3]
    assert (tmp_path / "strokes_glyphs_train.png").stat().st_size > 5000


def test_strokes_command_names_too_few_strokes(tmp_path, capsys) -> None:
    path = _dood_checkpoint(tmp_path, -12.0)  # the guide (almost) never draws
    argv = ["strokes", str(path), "--num-examples", "4", "--clusters", "3", "--no-progress"]
    assert tasks.cli.main(argv) == 1
    assert "present strokes are too few for k-means with k=3" in capsys.readouterr().err
    assert not list(tmp_path.glob("strokes_*"))
    with pytest.raises(SystemExit):
        tasks.cli.main(["strokes", str(path), "--clusters", "1"])


def test_neural_renderer_exemplars_are_source_crops(tmp_path) -> None:
    torch.manual_seed(0)
    model, guide = build_dood(DooDConfig(**DOOD_TINY, renderer="neural").to_dict())
    with torch.no_grad():
        guide.pres_net.init_output(3.0)
    images = load_dood_images("glyphs", "train", size=SIZE, num_examples=4, seed=0).images
    strokes = infer_strokes(guide.eval(), images, batch_size=4, seed=0)
    assert exemplar_kind(model, strokes) == "crop"  # its z_what is not drawn as a Bézier curve
    study = cluster_study(strokes.features, (2,), seed=0)
    path, settings = write_stroke_figure(
        tmp_path / "crops.png",
        model.eval(),
        strokes,
        images,
        study["labels"][2],
        study["centres"][2],
        tsne_points=8,
        exemplars=2,
    )
    assert path.stat().st_size > 1000 and settings["exemplar_kind"] == "crop"
