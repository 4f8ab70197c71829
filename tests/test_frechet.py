"""Fréchet distances (tasks/quality/): the closed form, the feature network, Inception's errors
and ``pyro-draw fid`` end to end on tiny checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

import tasks.cli
from generative.air import AirConfig
from generative.draw import DrawConfig, DrawModel
from guides.draw import DrawGuide
from inference.checkpoint import save_checkpoint
from tasks.dood import FAMILY
from tasks.quality import (
    FeatureStatistics,
    FidOptions,
    feature_statistics,
    frechet_distance,
    frechet_from_statistics,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from tasks.quality.data import ImageSource, labelled_images, load_real, model_samples
from tasks.quality.features import ClassifierFeatures, FeatureNetError
from tasks.quality.inception import InceptionFeatures, InceptionUnavailable
from tests.tiny import AIR_TINY, tiny_dood_pair

SIZE = 16
GLYPHS = ImageSource("strokes", "glyphs", SIZE)


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _stats(mean, cov) -> FeatureStatistics:
    return FeatureStatistics(np.asarray(mean, float), np.asarray(cov, float), 100)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


# ----------------------------------------------------------------------------- the distance
def test_diagonal_gaussians_match_the_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, -1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    result = frechet_from_statistics(_stats(mu1, np.diag(sd1**2)), _stats(mu2, np.diag(sd2**2)))
    expected_trace = float(np.sum((sd1 - sd2) ** 2))  # Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) for diagonals
    assert result["mean_term"] == pytest.approx(float(np.sum((mu1 - mu2) ** 2)))
    assert result["trace_term"] == pytest.approx(expected_trace, rel=1e-9)
    assert result["frechet_distance"] == pytest.approx(8.25 + 6.25, rel=1e-9)
    assert result["eps_offset"] is False


def test_full_covariances_match_an_eigendecomposition() -> None:
    rng = np.random.default_rng(0)
    s1, s2 = _spd(rng, 6), _spd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    # Tr((Σ1 Σ2)^½) = Tr((Σ1^½ Σ2 Σ1^½)^½) = Σ √λ of the symmetric PSD middle matrix
    root1 = _sym_sqrt(s1)
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(eig))
    found = frechet_from_statistics(_stats(mu1, s1), _stats(mu2, s2))["frechet_distance"]
    assert found == pytest.approx(float(expected), rel=1e-8)
    back = frechet_from_statistics(_stats(mu2, s2), _stats(mu1, s1))["frechet_distance"]
    assert back == pytest.approx(found, rel=1e-8)  # symmetric


def test_identical_sets_are_at_zero_and_sets_are_symmetric() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8))
    y = rng.normal(loc=0.3, scale=1.5, size=(300, 8))
    assert abs(frechet_distance(x, x)) < 1e-8
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-8)
    assert frechet_distance(x, y) > 1.0
    # many samples of two Gaussians approach the closed form: ‖Δμ‖² = 8·0.09, trace 8·0.25
    big_x, big_y = rng.normal(size=(20000, 8)), rng.normal(0.3, 1.5, size=(20000, 8))
    assert frechet_distance(big_x, big_y) == pytest.approx(0.72 + 2.0, rel=0.05)


def test_singular_covariances_take_the_eps_offset() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 20))  # rank 4 covariances of 20 dimensions
    y = rng.normal(size=(5, 20))
    x[:, 0] = y[:, 0] = 1.0  # a constant feature too
    result = frechet_from_statistics(feature_statistics(x), feature_statistics(y))
    assert np.isfinite(result["frechet_distance"]) and result["frechet_distance"] > 0
    assert result["eps_offset"] is True
    regular = frechet_from_statistics(feature_statistics(x[:, 1:4]), feature_statistics(y[:, 1:4]))
    assert regular["eps_offset"] is False
    assert abs(frechet_distance(x, x)) < 1e-3


def test_bad_features_are_refused() -> None:
    with pytest.raises(ValueError, match="feature dimensions differ"):
        frechet_distance(np.zeros((4, 3)) + np.arange(4)[:, None], np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least 2 vectors"):
        feature_statistics(np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"an \(N, D\) array"):
        feature_statistics(np.ones(5))


# ----------------------------------------------------------------------------- feature networks
def test_feature_network_trains_saves_and_loads(tmp_path: Path) -> None:
    data = labelled_images(GLYPHS, num_train=64, num_test=32)
    assert data.train_images.shape == (64, 1, SIZE, SIZE) and data.num_classes <= 6
    assert int(data.train_labels.min()) >= 0 and data.describe["labels"].startswith("number")
    net, record = train_feature_net(data, steps=3, batch_size=16, feature_size=32, progress=False)
    features = ClassifierFeatures(net, record)(data.test_images)
    assert features.shape == (32, 32) and features.dtype == np.float64
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["steps"] == 3
    path = save_feature_net(net, record, tmp_path / "net.pt")
    again, saved = load_feature_net(path, dataset="glyphs", size=SIZE)
    assert saved["test_accuracy"] == record["test_accuracy"]
    assert np.array_equal(ClassifierFeatures(again, saved)(data.test_images), features)
    with pytest.raises(FeatureNetError, match="trained on glyphs at 16x16"):
        load_feature_net(path, dataset="mnist", size=SIZE)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(FeatureNetError, match="not a feature network"):
        load_feature_net(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="must be > 0"):
        train_feature_net(data, steps=0)


def test_inception_needs_weights_and_torchvision(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(InceptionUnavailable, match="no weights file"):
        InceptionFeatures(tmp_path / "missing.pth")
    weights = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(InceptionUnavailable, match="pip install torchvision"):
        InceptionFeatures(weights)


def test_real_sets_are_disjoint_halves_and_samples_are_images() -> None:
    first, second, data = load_real(GLYPHS, 10, seed=3)
    assert first.shape == second.shape == (10, 1, SIZE, SIZE) and len(data) == 20
    flat = data.images.flatten(1)
    rows = [
        int((flat == image.flatten()).all(1).nonzero()[0]) for image in torch.cat([first, second])
    ]
    assert sorted(rows) == list(range(20))  # every test image once: disjoint halves
    model, _, _ = tiny_dood_pair(SIZE)
    cold = model_samples(model, GLYPHS, 7, temperature=0.5, seed=1)
    assert cold.shape == (7, 1, SIZE, SIZE) and 0.0 <= float(cold.min()) <= float(cold.max()) <= 1
    assert torch.equal(cold, model_samples(model, GLYPHS, 7, temperature=0.5, seed=1))


# ----------------------------------------------------------------------------- the command
def _dood_checkpoint(path: Path) -> Path:
    model, guide, config = tiny_dood_pair(SIZE)
    return _save(path, "dood", config, model, guide)


def _air_checkpoint(path: Path) -> Path:
    config = AirConfig(**AIR_TINY, difference=True).to_dict()
    model, guide = FAMILY.model("difference-air").build(config)
    return _save(path, "difference-air", config, model, guide)


def _draw_checkpoint(path: Path) -> Path:
    config = DrawConfig(
        height=28,
        width=28,
        steps=2,
        encoder_size=8,
        decoder_size=8,
        z_size=2,
        read_size=2,
        write_size=2,
    )
    model = DrawModel(config)
    return _save(path, "draw", config.to_dict(), model, DrawGuide(model))


def _save(path: Path, name: str, config: dict, model, guide) -> Path:
    record = {
        "model": name,
        "model_config": config,
        "model_state": model.state_dict(),
        "guide_state": guide.state_dict(),
        "step": 0,
        "data": {"dataset": "glyphs"},
    }
    return save_checkpoint(record, path)


FAST = ["--num-samples", "12", "--feature-steps", "3", "--feature-train-examples", "64"]
FAST += ["--no-progress", "--threads", "1"]


def test_fid_command_end_to_end(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    dood = _dood_checkpoint(tmp_path / "dood.pt")
    air = _air_checkpoint(tmp_path / "air.pt")
    draw = _draw_checkpoint(tmp_path / "draw.pt")
    out = tmp_path / "fid"
    argv = ["fid", str(dood), str(air), str(draw), "--out", str(out), "--temperature", "1", "0.5"]
    assert tasks.cli.main(argv + FAST) == 0, capsys.readouterr().err
    table = json.loads((out / "fid.json").read_text())
    rows = table["rows"]
    floors = [r for r in rows if r["kind"] == "floor"]
    assert {(r["trained_on"], r["image_size"]) for r in floors} == {("glyphs", 16), ("glyphs", 28)}
    samples = [(r["model"], r["temperature"]) for r in rows if r["kind"] == "samples"]
    assert samples == [("dood", 1.0), ("dood", 0.5), ("difference-air", 1.0), ("draw", 1.0)]
    assert all(np.isfinite(r["frechet_distance"]) for r in rows)
    draw_row = next(r for r in rows if r["model"] == "draw")
    assert draw_row["samples"].startswith("Bernoulli")  # DRAW's glyph test split is binary
    nets = sorted(p.name for p in out.glob("feature_net_*.pt"))
    assert nets == ["feature_net_glyphs_16.pt", "feature_net_glyphs_28.pt"]
    assert 0 <= table["features"]["glyphs_16"]["test_accuracy"] <= 1
    assert "paper_fig6" in table and "FID" in capsys.readouterr().out
    # a second run reads the cached network (no training line) and --json goes where asked
    again = tmp_path / "again.json"
    assert tasks.cli.main(["fid", str(dood), "--out", str(out), "--json", str(again), *FAST]) == 0
    assert "training a feature network" not in capsys.readouterr().out
    given = ["--feature-net", str(out / "feature_net_glyphs_16.pt")]
    assert tasks.cli.main(["fid", str(dood), "--json", str(again), *given, *FAST]) == 0


def test_fid_refuses_bad_input_before_any_work(tmp_path: Path, capsys) -> None:
    dood = _dood_checkpoint(tmp_path / "dood.pt")
    air = _air_checkpoint(tmp_path / "air.pt")
    out = tmp_path / "fid"
    cases = [
        ([str(air), "--temperature", "0.5"], "has no sampling temperature"),
        ([str(dood), "--features", str(tmp_path / "none.pth")], "no weights file"),
        ([str(dood), "--feature-net", str(tmp_path / "none.pt")], "--feature-net: no file"),
        ([str(dood), "--num-samples", "1"], "a covariance needs >= 2"),
    ]
    for extra, message in cases:
        assert tasks.cli.main(["fid", *extra, "--out", str(out), "--no-progress"]) == 1
        assert message in capsys.readouterr().err, message
    sketch = _save(
        tmp_path / "sketch.pt", "sketch-rnn", {}, torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    )
    assert tasks.cli.main(["fid", str(sketch), "--out", str(out)]) == 1
    assert "does not sample images" in capsys.readouterr().err
    assert not out.exists()  # nothing was written
    with pytest.raises(ValueError, match="not both"):
        FidOptions(checkpoints=[str(dood)], features="a", feature_net="b")
