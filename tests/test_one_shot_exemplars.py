"""New exemplars of a character (tasks/one_shot/exemplars.py, DooD Fig. 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from PIL import Image

from generative.air import AirConfig
from inference.checkpoint import save_checkpoint
from tasks.cli import main
from tasks.data import DataError
from tasks.data.glyphs import generate_glyphs
from tasks.dood import FAMILY
from tasks.one_shot.exemplars import (
    ExemplarSettings,
    best_types,
    exemplar_model,
    motor_noise_std,
    omniglot_characters,
    read_character_images,
    sample_exemplars,
    write_exemplars_grid,
)
from tasks.one_shot.tokens import TokenTypes, render_tokens
from tests.test_one_shot import _fake_archive
from tests.tiny import AIR_TINY, tiny_dood, tiny_dood_pair

SIZE = 16
POINTS = 20  # curve points of the renderer
DOOD_TINY = tiny_dood(SIZE, hidden=16, render_points=POINTS)


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _glyph_types(num: int, seed: int = 0) -> TokenTypes:
    g = generate_glyphs(num, seed=seed)
    return TokenTypes(
        g["control_points"], g["stroke_mask"].bool(), g["sigma"], g["omega0"], g["omega1"]
    )


def _random_types(num: int, strokes: int = 3, points: int = 5) -> TokenTypes:
    generator = torch.Generator().manual_seed(0)
    present = torch.ones(num, strokes, dtype=torch.bool)
    present[: num // 2, -1] = False  # some absent strokes
    return TokenTypes(
        torch.rand(num, strokes, points, 2, generator=generator) - 0.5,
        present,
        torch.full((num, strokes), 0.05),
        torch.full((num, strokes), 0.8),
        torch.full((num,), 0.5),
    )


def _trace(types: TokenTypes, settings: ExemplarSettings, data: dict | None = None):
    model = exemplar_model if data is None else poutine.condition(exemplar_model, data=data)
    return poutine.trace(model).get_trace(types, settings, (SIZE, SIZE), POINTS)


# ----------------------------------------------------------------------------- noise model
def test_motor_noise_profile_is_the_official_indices() -> None:
    settings = ExemplarSettings()
    assert settings.middle_noise == 0.2 and settings.neighbour_noise == 0.006  # 2 × 0.1, 0.003
    torch.testing.assert_close(motor_noise_std(5, settings), torch.tensor([0, 6e-3, 0.2, 6e-3, 0]))
    torch.testing.assert_close(motor_noise_std(4, settings), torch.tensor([0, 6e-3, 0.2, 6e-3]))


def test_zero_noise_and_identity_affine_give_the_type_itself() -> None:
    types = _glyph_types(5)
    own = render_tokens(types.points, types, (SIZE, SIZE), POINTS)
    still = ExemplarSettings(middle_noise=0.0, neighbour_noise=0.0)
    trace = _trace(types, still, {"affine": torch.zeros(5, 7)})  # u = 0: the identity
    assert set(trace.nodes) >= {"motor_noise", "affine", "token_points"}
    torch.testing.assert_close(trace.nodes["token_points"]["value"], types.points)
    torch.testing.assert_close(trace.nodes["_RETURN"]["value"], own)
    no_affine = ExemplarSettings(middle_noise=0.0, neighbour_noise=0.0, affine=False)
    plain = _trace(types, no_affine)
    assert "affine" not in plain.nodes
    torch.testing.assert_close(plain.nodes["_RETURN"]["value"], own)


def test_fig7_noise_moves_the_middle_point_far_more_than_its_neighbours() -> None:
    types = _random_types(600)
    torch.manual_seed(0)
    trace = _trace(types, ExemplarSettings(affine=False))
    offsets = trace.nodes["token_points"]["value"] - types.points  # (B, T, J, 2)
    present = offsets[types.present]  # (strokes, J, 2)
    std = present.transpose(0, 1).reshape(5, -1).std(1)  # per control point
    torch.testing.assert_close(std[2], torch.tensor(0.2), rtol=0.08, atol=0.0)
    torch.testing.assert_close(std[[1, 3]], torch.full((2,), 0.006), rtol=0.08, atol=0.0)
    assert (std[[0, 4]] == 0).all()
    trace.compute_log_prob()
    assert torch.isfinite(trace.nodes["motor_noise"]["log_prob"]).all()
    # with the affine every point moves, the middle one still by far the most
    torch.manual_seed(1)
    moved = _trace(types, ExemplarSettings())
    offsets = (moved.nodes["token_points"]["value"] - types.points)[types.present]
    std = offsets.transpose(0, 1).reshape(5, -1).std(1)
    assert std[2] > 3 * std[[0, 1, 3, 4]].max() and (std > 0).all()
    raw = moved.nodes["affine"]["value"]
    assert raw.shape == (600, 7) and 0.8 < float(raw.std()) < 1.2  # u ~ N(0, 1)


# ----------------------------------------------------------------------------- with a model
def _dood(seed: int = 0):
    return tiny_dood_pair(SIZE, seed)


def test_shapes_seeds_and_the_noiseless_exemplars() -> None:
    model, guide, _ = _dood()
    images = torch.rand(3, 1, SIZE, SIZE)
    settings = ExemplarSettings(type_samples=3)
    state = torch.get_rng_state()
    first = sample_exemplars(model, guide, images, 4, seed=5, settings=settings)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert first.shape == (3, 4, 1, SIZE, SIZE) and torch.isfinite(first).all()
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    again = sample_exemplars(model, guide, images, 4, seed=5, settings=settings)
    other = sample_exemplars(model, guide, images, 4, seed=6, settings=settings)
    assert torch.equal(first, again) and not torch.equal(first, other)
    still = ExemplarSettings(type_samples=3, middle_noise=0.0, neighbour_noise=0.0, affine=False)
    same = sample_exemplars(model, guide, images, 2, seed=5, settings=still)
    torch.manual_seed(5)
    types = best_types(model, guide, images, still)
    own = render_tokens(types.points, types, (SIZE, SIZE), model.num_render_points)
    torch.testing.assert_close(same, own[:, None].expand(3, 2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="images must be"):
        sample_exemplars(model, guide, torch.rand(2, 1, 8, 8), 2, seed=0)


# ----------------------------------------------------------------------------- files
def _png(path: Path, array: np.ndarray, mode: str = "L") -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


def _white_background(h: int = 30, w: int = 40) -> np.ndarray:
    image = np.full((h, w), 255, np.uint8)
    image[h // 2 - 2 : h // 2 + 2, 5:-5] = 0  # a black bar
    return image


def _black_background(size: int = 24) -> np.ndarray:
    image = np.zeros((size, size), np.uint8)
    image[3:-3, size // 2 - 2 : size // 2 + 2] = 255  # a white bar
    return image


def test_images_are_read_with_ink_up(tmp_path: Path) -> None:
    white = _png(tmp_path / "white.png", _white_background())
    black = _png(tmp_path / "black.png", _black_background())
    images = read_character_images([white, black], (SIZE, SIZE))
    assert images.shape == (2, 1, SIZE, SIZE) and images.dtype == torch.float32
    assert float(images[:, 0, 0, 0].max()) == 0.0  # background 0 both times
    assert float(images[0, 0, SIZE // 2].max()) > 0.5  # the horizontal bar, ink = 1
    assert float(images[1, 0, :, SIZE // 2].max()) > 0.5  # the vertical bar
    assert float(images[0, 0, :3].max()) == 0.0  # 40x30 padded to square, not stretched
    rgba = np.zeros((20, 20, 4), np.uint8)  # black ink on a transparent background
    rgba[8:12, 2:-2] = (0, 0, 0, 255)
    clear = read_character_images([_png(tmp_path / "rgba.png", rgba, "RGBA")], (SIZE, SIZE))
    assert float(clear[0, 0, 0, 0]) == 0.0 and float(clear[0, 0, SIZE // 2].max()) > 0.5
    broken = tmp_path / "broken.png"
    broken.write_text("not a png")
    with pytest.raises(DataError, match="broken.png"):
        read_character_images([broken], (SIZE, SIZE))


def test_the_grid_has_the_targets_first(tmp_path: Path) -> None:
    targets = torch.zeros(2, 1, 8, 8)
    targets[:, :, 0, 0] = 1.0
    exemplars = torch.rand(2, 3, 1, 8, 8)
    path = write_exemplars_grid(targets, exemplars, tmp_path / "g.png", names=["a", "b"])
    picture = np.asarray(Image.open(path))
    assert picture.ndim == 2 and picture.shape[1] > 4 * 96  # 4 upscaled cells per row
    with pytest.raises(ValueError, match="exemplars: expected"):
        write_exemplars_grid(targets, exemplars[:1], tmp_path / "h.png")


def test_omniglot_characters_from_the_real_data(real_data_dir: Path) -> None:
    runs, names = omniglot_characters(3, SIZE, data_dir=real_data_dir)
    assert runs.shape == (3, 1, SIZE, SIZE) and names == [
        "run01 class01",
        "run02 class01",
        "run03 class01",
    ]  # round-robin over the runs: different alphabets first
    spread, names = omniglot_characters(3, SIZE, source="evaluation", data_dir=real_data_dir)
    assert spread.shape == (3, 1, SIZE, SIZE) and names[0] == "character 965"  # official id
    assert names[-1] == "character 1623" and float(spread.amax((1, 2, 3)).min()) > 0.5


# ----------------------------------------------------------------------------- command line
def _checkpoint(path: Path, model: str = "dood") -> Path:
    if model == "dood":
        net, guide, config = _dood()
    else:
        config = AirConfig(**AIR_TINY).to_dict()
        net, guide = FAMILY.model("air").build(config)
    record = {
        "model": model,
        "model_config": config,
        "model_state": net.state_dict(),
        "guide_state": guide.state_dict(),
        "step": 0,
        "data": {"dataset": "glyphs"},
    }
    return save_checkpoint(record, path)


FAST = ["--num-exemplars", "3", "--type-samples", "2", "--threads", "1", "--no-progress"]


def test_cli_writes_the_grid_of_png_targets(tmp_path: Path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "run" / "dood.pt")
    white = _png(tmp_path / "white.png", _white_background())
    black = _png(tmp_path / "black.png", _black_background())
    out = tmp_path / "out"
    argv = ["exemplars", str(ckpt), "--images", str(white), str(black), "--out", str(out)]
    assert main(argv + FAST) == 0
    assert (out / "exemplars.png").is_file() and str(
        out / "exemplars.png"
    ) in capsys.readouterr().out
    assert main(["exemplars", str(ckpt), "--images", str(white), *FAST]) == 0  # default out
    assert (ckpt.parent / "exemplars.png").is_file()


def test_cli_takes_omniglot_characters_from_the_runs(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "dood.pt")
    runs = _fake_archive(tmp_path / "runs.zip")
    argv = ["exemplars", str(ckpt), "--omniglot-characters", "3", "--runs", str(runs)]
    assert main(argv + ["--out", str(tmp_path / "om"), *FAST]) == 0
    assert (tmp_path / "om" / "exemplars.png").is_file()


def test_cli_refuses_other_models_and_bad_targets(tmp_path: Path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "dood.pt")
    air = _checkpoint(tmp_path / "air.pt", "air")
    white = _png(tmp_path / "white.png", _white_background())
    missing = tmp_path / "nowhere.png"
    cases = [
        ([str(air), "--images", str(white)], ["air.pt", "needs a DooD checkpoint"]),
        ([str(ckpt), "--images", str(white), str(missing)], ["nowhere.png", "no such image"]),
        ([str(ckpt)], ["--images PNG"]),
        ([str(ckpt), "--images", str(white), "--omniglot-characters", "2"], ["not both"]),
    ]
    for extra, words in cases:
        assert main(["exemplars", *extra, "--out", str(tmp_path / "out"), *FAST]) == 1
        err = capsys.readouterr().err
        assert all(word in err for word in words), err
    assert not (tmp_path / "out").exists()
