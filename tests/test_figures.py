"""Tests for tasks.figures: layout, colours, attention boxes, nearest neighbours, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from tasks.figures import (
    attention_linewidths,
    nearest_neighbours,
    save_attention_steps,
    save_generation_sequences,
    save_image_grid,
    save_samples_with_nearest,
    select_steps,
)


def _read(path: Path) -> np.ndarray:
    img = imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img[..., :3]


def _red(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 0.6) & (img[..., 1] < 0.35) & (img[..., 2] < 0.35)


def _black(img: np.ndarray) -> np.ndarray:
    return img.max(axis=-1) < 0.05


# ----------------------------------------------------------------------------- image grid


def test_image_grid_png_aspect_and_black_background(tmp_path: Path) -> None:
    h, w = 20, 30
    images = torch.ones(7, 1, h, w)  # 3 columns -> 3 rows, last two cells empty
    out = save_image_grid(images, tmp_path / "sub" / "grid.png", ncols=3)
    assert out == tmp_path / "sub" / "grid.png" and out.exists()
    img = _read(out)
    assert img.shape[0] / img.shape[1] == pytest.approx((3 * h) / (3 * w), rel=0.05)
    # white images in the occupied cells, black in the two empty bottom-right cells
    assert img[img.shape[0] // 6, img.shape[1] // 6].min() > 0.95
    assert _black(img[-img.shape[0] // 6 :, -img.shape[1] // 6 :]).all()
    # black gaps separate the cells of the first row: some fully black pixel columns inside
    band = img[5 : img.shape[0] // 3 - 5, 5:-5]
    assert _black(band).all(axis=0).any()


def test_image_grid_grey_colormap_and_titles(tmp_path: Path) -> None:
    images = torch.full((2, 1, 16, 16), 0.5)
    plain = _read(save_image_grid(images, tmp_path / "plain.png"))
    centre = plain[plain.shape[0] // 2, plain.shape[1] // 4]
    assert centre == pytest.approx([0.5, 0.5, 0.5], abs=0.01)
    titled = _read(save_image_grid(images, tmp_path / "titled.png", titles=["a", "b"]))
    assert titled.shape[1] == plain.shape[1] and titled.shape[0] > plain.shape[0]
    with pytest.raises(ValueError, match="expected 2 titles"):
        save_image_grid(images, tmp_path / "bad.png", titles=["a"])


def test_image_grid_rgb_colours(tmp_path: Path) -> None:
    images = torch.zeros(3, 3, 12, 12)
    for c in range(3):
        images[c, c] = 1.0  # red, green, blue
    img = _read(save_image_grid(images, tmp_path / "rgb.png", ncols=3))
    y = img.shape[0] // 2
    for c in range(3):
        pixel = img[y, int((c + 0.5) / 3 * img.shape[1])]
        assert pixel == pytest.approx(np.eye(3)[c], abs=0.02)


def test_dpi_scales_resolution(tmp_path: Path) -> None:
    images = torch.rand(4, 1, 28, 28)
    lo = _read(save_image_grid(images, tmp_path / "lo.png", dpi=50))
    hi = _read(save_image_grid(images, tmp_path / "hi.png", dpi=100))
    assert hi.shape[1] == pytest.approx(2 * lo.shape[1], abs=2)


# ----------------------------------------------------------------------------- boxes


def test_red_box_on_black_image(tmp_path: Path) -> None:
    h = w = 28
    canvases = torch.zeros(1, 1, 1, h, w)
    box = (6.0, 8.0, 20.0, 18.0)  # x_min, y_min, x_max, y_max
    out = save_generation_sequences(
        canvases, tmp_path / "box.png", boxes=torch.tensor([[box]]), box_widths=torch.ones(1, 1)
    )
    img = _read(out)
    red = _red(img)
    assert red.any()
    ph, pw = red.shape

    def at(x: float, y: float) -> tuple[int, int]:  # pixel coordinates -> PNG (row, col)
        return int(round((y + 0.5) / h * ph)), int(round((x + 0.5) / w * pw))

    def red_near(x: float, y: float, tol: int = 4) -> bool:
        r, c = at(x, y)
        return bool(red[max(r - tol, 0) : r + tol + 1, max(c - tol, 0) : c + tol + 1].any())

    x0, y0, x1, y1 = box
    mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
    for x, y in [(x0, mid_y), (x1, mid_y), (mid_x, y0), (mid_x, y1)]:
        assert red_near(x, y), (x, y)
    for x, y in [(mid_x, mid_y), (1, 1), (26, 26), (1, 26), (26, 1), (x0 - 4, mid_y)]:
        assert not red_near(x, y, tol=2), (x, y)
    # all red pixels lie within a few PNG pixels of the box outline
    rows, cols = np.nonzero(red)
    r0, c0 = at(x0, y0)
    r1, c1 = at(x1, y1)
    assert rows.min() >= r0 - 5 and rows.max() <= r1 + 5
    assert cols.min() >= c0 - 5 and cols.max() <= c1 + 5


def test_box_edges_pass_through_pixel_centres(tmp_path: Path) -> None:
    h, w = 20, 28
    canvases = torch.full((1, 1, 1, h, w), 0.5)  # grey, so the image extent is visible
    box = (3.0, 4.0, 17.0, 12.0)
    img = _read(
        save_generation_sequences(canvases, tmp_path / "geo.png", boxes=torch.tensor([[box]]))
    )
    rows, cols = np.nonzero(~_black(img))
    top, left = rows.min(), cols.min()
    sy, sx = (rows.max() + 1 - top) / h, (cols.max() + 1 - left) / w  # PNG px per image px

    def to_png(x: float, y: float) -> tuple[float, float]:
        return top + (y + 0.5) * sy, left + (x + 0.5) * sx

    red = _red(img)
    x0, y0, x1, y1 = box
    r_mid, _ = to_png(0, (y0 + y1) / 2)
    red_cols = np.nonzero(red[int(r_mid)])[0]
    _, c0 = to_png(x0, 0)
    _, c1 = to_png(x1, 0)
    left_line = red_cols[red_cols < (c0 + c1) / 2].mean()
    right_line = red_cols[red_cols > (c0 + c1) / 2].mean()
    assert left_line == pytest.approx(c0, abs=1.5) and right_line == pytest.approx(c1, abs=1.5)
    _, c_mid = to_png((x0 + x1) / 2, 0)
    red_rows = np.nonzero(red[:, int(c_mid)])[0]
    r0, _ = to_png(0, y0)
    r1, _ = to_png(0, y1)
    assert red_rows[red_rows < (r0 + r1) / 2].mean() == pytest.approx(r0, abs=1.5)
    assert red_rows[red_rows > (r0 + r1) / 2].mean() == pytest.approx(r1, abs=1.5)


def test_box_partly_outside_is_still_drawn(tmp_path: Path) -> None:
    canvases = torch.zeros(1, 1, 1, 28, 28)
    boxes = torch.tensor([[[20.0, 20.0, 40.0, 40.0]]])
    img = _read(save_generation_sequences(canvases, tmp_path / "out.png", boxes=boxes))
    red = _red(img)
    assert red.any()
    rows, cols = np.nonzero(red)
    assert rows.min() > img.shape[0] * 0.6 and cols.min() > img.shape[1] * 0.6


def test_box_width_controls_line_width(tmp_path: Path) -> None:
    canvases = torch.zeros(1, 2, 1, 28, 28)
    boxes = torch.tensor([[5.0, 5.0, 22.0, 22.0]]).expand(1, 2, 4)
    widths = torch.tensor([[0.3, 4.0]])
    red = _red(
        _read(
            save_generation_sequences(canvases, tmp_path / "w.png", boxes=boxes, box_widths=widths)
        )
    )
    half = red.shape[1] // 2
    thin, thick = red[:, :half].sum(), red[:, half:].sum()
    assert thin > 0 and thick > 3 * thin


def test_attention_linewidths_range() -> None:
    lw = attention_linewidths(torch.tensor([[1.0, 2.0], [3.0, float("nan")]]))
    assert lw[0, 0] == pytest.approx(0.5) and lw[1, 0] == pytest.approx(3.0)
    assert lw[0, 1] == pytest.approx(1.75) and lw[1, 1] == pytest.approx(1.75)
    assert np.all(attention_linewidths(torch.full((3,), 2.0)) == 1.75)
    assert attention_linewidths(None, (2, 5)).shape == (2, 5)


# ----------------------------------------------------------------------------- sequences


def test_select_steps_keeps_last() -> None:
    assert select_steps(10, 4) == [1, 5, 9]
    assert select_steps(9, 4) == [0, 4, 8]
    assert select_steps(3, 5) == [2]
    assert select_steps(4, 1) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        select_steps(4, 0)


def test_generation_sequences_stride_keeps_last_step(tmp_path: Path) -> None:
    s, t, h, w = 2, 10, 16, 16
    # step k is a constant grey image of value k / (t - 1): the last step is white
    values = torch.arange(t, dtype=torch.float32) / (t - 1)
    canvases = values.view(1, t, 1, 1, 1).expand(s, t, 1, h, w).clone()
    img = _read(save_generation_sequences(canvases, tmp_path / "seq.png", step_stride=4))
    # columns are steps 1, 5, 9 -> 3 columns, 2 rows
    assert img.shape[0] / img.shape[1] == pytest.approx(2 / 3, rel=0.05)
    y = img.shape[0] // 4
    shown = [img[y, int((j + 0.5) / 3 * img.shape[1]), 0] for j in range(3)]
    assert shown == pytest.approx([1 / 9, 5 / 9, 1.0], abs=0.01)


def test_generation_sequences_rgb_with_boxes(tmp_path: Path) -> None:
    canvases = torch.zeros(2, 3, 3, 20, 20)
    canvases[:, :, 1] = 0.6  # green-ish background
    boxes = torch.tensor([2.0, 2.0, 10.0, 10.0]).expand(2, 3, 4)
    img = _read(save_generation_sequences(canvases, tmp_path / "rgb.png", boxes=boxes))
    assert img.shape[0] / img.shape[1] == pytest.approx(2 / 3, rel=0.05)
    assert img[img.shape[0] // 4, img.shape[1] // 6 + 10] == pytest.approx([0, 0.6, 0], abs=0.01)
    assert _red(img).any()


# ----------------------------------------------------------------------------- nearest


def test_nearest_neighbours_hand_made() -> None:
    reference = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [1.0, 1.0]]).view(4, 1, 1, 2)
    samples = torch.tensor([[4.0, 4.5], [0.9, 1.2], [-1.0, 0.0]]).view(3, 1, 1, 2)
    nn = nearest_neighbours(samples, reference)
    assert nn.dtype == torch.int64
    assert nn.tolist() == [2, 1, 0]  # tie between 1 and 3 resolved to the lower index
    assert nearest_neighbours(samples, reference, chunk_size=1).tolist() == [2, 1, 0]


def test_nearest_neighbours_matches_brute_force_chunked() -> None:
    gen = torch.Generator().manual_seed(0)
    samples = torch.rand(13, 1, 5, 5, generator=gen)
    reference = torch.rand(50, 1, 5, 5, generator=gen)
    brute = ((samples.view(13, 1, -1) - reference.view(1, 50, -1)) ** 2).sum(-1).argmin(1)
    for chunk in (3, 7, 50, 4096):
        assert torch.equal(nearest_neighbours(samples, reference, chunk_size=chunk), brute)
    assert torch.equal(nearest_neighbours(samples.numpy(), reference.numpy(), chunk_size=7), brute)


def test_nearest_neighbours_invalid() -> None:
    with pytest.raises(ValueError, match=r"found \(2, 1, 3, 3\) and \(4, 1, 3, 4\)"):
        nearest_neighbours(torch.zeros(2, 1, 3, 3), torch.zeros(4, 1, 3, 4))
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_neighbours(torch.zeros(2, 4), torch.zeros(4, 4), chunk_size=0)


def test_samples_with_nearest_column(tmp_path: Path) -> None:
    h = w = 16
    samples = torch.tensor([0.2, 0.4, 0.6, 0.8]).view(4, 1, 1, 1).expand(4, 1, h, w)
    reference = torch.tensor([0.1, 0.45, 0.7, 0.85, 0.3]).view(5, 1, 1, 1).expand(5, 1, h, w)
    img = _read(save_samples_with_nearest(samples, reference, tmp_path / "nn.png", ncols=2))
    body = img[50:]  # below the header text

    def levels(col: int) -> set[float]:
        grey = body[:, col, 0][~_black(body[:, col])]
        return {round(float(v), 2) for v in grey}

    assert levels(img.shape[1] - 12) == {0.45, 0.85}  # nearest of 0.4 and 0.8
    assert levels(12) == {0.2, 0.6}  # first sample column
    # the nearest column is separated by a gap wider than the normal inter-cell gap
    black_cols = _black(body).all(axis=0)
    runs, run = [], 0
    for b in black_cols:
        run = run + 1 if b else 0
        runs.append(run)
    assert max(runs) >= 10


# ----------------------------------------------------------------------------- attention


def test_attention_steps_panels(tmp_path: Path) -> None:
    image = torch.zeros(1, 20, 20)
    boxes = torch.tensor([[1.0, 1.0, 8.0, 8.0], [5, 5, 12, 12], [9, 9, 16, 16], [2, 10, 9, 18]])
    out = save_attention_steps(
        image, boxes, tmp_path / "att.png", ncols=2, box_widths=torch.tensor([1.0, 2.0, 3.0, 4.0])
    )
    img = _read(out)
    assert img.shape[0] / img.shape[1] == pytest.approx(1.0, rel=0.05)  # 2 x 2 panels
    lime = (img[..., 1] > 0.6) & (img[..., 0] < 0.35) & (img[..., 2] < 0.35)
    hh, hw = img.shape[0] // 2, img.shape[1] // 2
    for quadrant in (lime[:hh, :hw], lime[:hh, hw:], lime[hh:, :hw], lime[hh:, hw:]):
        assert quadrant.any()
    assert not _red(img).any()


# ----------------------------------------------------------------------------- files


def test_vector_formats_and_suffix(tmp_path: Path) -> None:
    images = torch.rand(3, 1, 8, 8)
    svg = save_image_grid(images, tmp_path / "g.svg")
    pdf = save_image_grid(images, tmp_path / "g.pdf")
    assert b"<svg" in svg.read_bytes()[:1000]
    assert pdf.read_bytes().startswith(b"%PDF")
    assert save_image_grid(images, tmp_path / "noext") == tmp_path / "noext.png"
    with pytest.raises(ValueError, match="unsupported figure format"):
        save_image_grid(images, tmp_path / "g.xyz")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "found"),
    [
        (lambda p: save_image_grid(torch.zeros(1, 8, 8), p), "(1, 8, 8)"),
        (lambda p: save_image_grid(torch.zeros(2, 2, 8, 8), p), "(2, 2, 8, 8)"),
        (lambda p: save_generation_sequences(torch.zeros(2, 1, 8, 8), p), "(2, 1, 8, 8)"),
        (
            lambda p: save_generation_sequences(
                torch.zeros(2, 3, 1, 8, 8), p, boxes=torch.zeros(2, 4)
            ),
            "(2, 4)",
        ),
        (
            lambda p: save_generation_sequences(
                torch.zeros(2, 3, 1, 8, 8),
                p,
                boxes=torch.zeros(2, 3, 4),
                box_widths=torch.zeros(3, 2),
            ),
            "(3, 2)",
        ),
        (
            lambda p: save_samples_with_nearest(
                torch.zeros(2, 1, 8, 8), torch.zeros(4, 1, 8, 9), p
            ),
            "(4, 1, 8, 9)",
        ),
        (
            lambda p: save_attention_steps(torch.zeros(1, 1, 8, 8), torch.zeros(2, 4), p),
            "(1, 1, 8, 8)",
        ),
        (lambda p: save_attention_steps(torch.zeros(1, 8, 8), torch.zeros(2, 3), p), "(2, 3)"),
    ],
)
def test_invalid_shapes_raise(tmp_path: Path, call, found: str) -> None:
    with pytest.raises(ValueError, match="expected") as err:
        call(tmp_path / "x.png")
    assert f"found shape {found}" in str(err.value)
    assert not (tmp_path / "x.png").exists()
