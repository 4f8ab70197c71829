"""Tests for tasks.sketch_rnn.svg and tasks.sketch_rnn.figures: SVG polylines and pen-up gaps,
bounds, colours, PNG/SVG grids, paper figures and input validation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.image import imread

from tasks.sketch_rnn.figures import (
    bilinear_colors,
    save_four_way_interpolation,
    save_interpolation_figure,
    save_sketch_grid,
    save_sketch_png,
    save_temperature_figure,
    wrap,
)
from tasks.sketch_rnn.svg import (
    check_stroke3,
    save_sketch_svg,
    sketch_bounds,
    sketch_lines,
    sketch_to_svg,
    styled_lines,
)

SVG_NS = {"svg": "http://www.w3.org/2000/svg"}

# Two strokes: (0,0) → (10,0) → (10,10) | pen up | (15,15) → (20,15); 5 points.
TWO_STROKES = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 1], [5, 5, 0], [5, 0, 1]], dtype=np.float32)


def _polylines(svg_text: str) -> list[tuple[np.ndarray, str]]:
    root = ET.fromstring(svg_text)
    out = []
    for el in root.iter(f"{{{SVG_NS['svg']}}}polyline"):
        pts = np.array([[float(v) for v in p.split(",")] for p in el.get("points").split()])
        out.append((pts, el.get("stroke")))
    return out


def _read(path: Path) -> np.ndarray:
    img = imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img[..., :3]


def _dark(img: np.ndarray) -> np.ndarray:
    return img.max(axis=-1) < 0.5


# ----------------------------------------------------------------------------- geometry


def test_two_strokes_give_two_polylines_with_absolute_coordinates() -> None:
    lines = _polylines(sketch_to_svg(TWO_STROKES))
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0][0], [[0, 0], [10, 0], [10, 10]])
    np.testing.assert_allclose(lines[1][0], [[15, 15], [20, 15]])
    assert {col for _, col in lines} == {"#000000"}


def test_move_from_origin_is_not_drawn_and_last_row_closes_stroke() -> None:
    # first offset (3, 4) is a pen-up move from the origin; no pen_lifted on the last row
    seq = np.array([[3, 4, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float64)
    lines = sketch_lines(seq)
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0], [[3, 4], [4, 4], [4, 5]])


def test_single_point_stroke_is_drawn_as_a_dot() -> None:
    seq = np.array([[2, 2, 1], [3, 0, 0], [1, 0, 1]], dtype=np.float64)
    lines = _polylines(sketch_to_svg(seq))
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0][0], [[2, 2], [2, 2]])  # zero-length, round cap
    np.testing.assert_allclose(lines[1][0], [[5, 2], [6, 2]])


def test_bounds_and_viewbox() -> None:
    assert sketch_bounds(TWO_STROKES) == (0.0, 0.0, 20.0, 15.0)
    assert sketch_bounds(torch.as_tensor(TWO_STROKES)) == (0.0, 0.0, 20.0, 15.0)
    assert sketch_bounds(np.zeros((0, 3))) == (0.0, 0.0, 0.0, 0.0)
    root = ET.fromstring(sketch_to_svg(TWO_STROKES, margin=0.1, size=100))
    vx, vy, vw, vh = (float(v) for v in root.get("viewBox").split())
    # square around the box: longer side 20 plus 10 % on each side, centred on (10, 7.5)
    assert vw == pytest.approx(24.0) and vh == pytest.approx(24.0)
    assert vx == pytest.approx(10 - 12) and vy == pytest.approx(7.5 - 12)
    assert root.get("width") == "100" and root.get("height") == "100"


def test_degenerate_sketches_render() -> None:
    for seq in (np.zeros((0, 3)), np.array([[5.0, 5.0, 1.0]])):
        root = ET.fromstring(sketch_to_svg(seq))
        assert float(root.get("viewBox").split()[2]) > 0


# ----------------------------------------------------------------------------- colours


def test_colour_by_stroke_order_follows_the_colormap() -> None:
    three = np.array([[0, 0, 0], [1, 0, 1], [1, 0, 0], [1, 0, 1], [1, 0, 0], [1, 0, 1]], float)
    lines = _polylines(sketch_to_svg(three, color_by_stroke=True, cmap="viridis"))
    cmap = colormaps["viridis"]
    assert [c for _, c in lines] == [to_hex(cmap(0.0)), to_hex(cmap(0.5)), to_hex(cmap(1.0))]


def test_prefix_points_split_a_stroke_at_the_boundary() -> None:
    lines = styled_lines(TWO_STROKES, prefix_points=2, prefix_color="red", color="blue")
    assert [c for _, c in lines] == ["#ff0000", "#0000ff", "#0000ff"]
    np.testing.assert_allclose(lines[0][0], [[0, 0], [10, 0]])
    np.testing.assert_allclose(lines[1][0], [[10, 0], [10, 10]])  # continuation from point 1
    all_prefix = styled_lines(TWO_STROKES, prefix_points=5)
    assert [c for _, c in all_prefix] == ["#ff0000", "#ff0000"]


def test_bilinear_colors_corners_and_centre() -> None:
    cols = bilinear_colors(["#ff0000", "#00ff00", "#0000ff", "#000000"], 3, 3)
    assert cols[0][0] == "#ff0000" and cols[0][2] == "#00ff00"
    assert cols[2][0] == "#0000ff" and cols[2][2] == "#000000"
    assert cols[1][1] == to_hex((0.25, 0.25, 0.25))


# ----------------------------------------------------------------------------- files


def test_svg_file_written_with_parents(tmp_path: Path) -> None:
    out = save_sketch_svg(tmp_path / "a" / "b" / "s.svg", TWO_STROKES, color_by_stroke=True)
    assert out.exists()
    assert len(_polylines(out.read_text())) == 2
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_png_is_written_and_not_blank(tmp_path: Path) -> None:
    out = save_sketch_png(tmp_path / "sub" / "s.png", TWO_STROKES)
    img = _read(out)
    assert img[0, 0].min() > 0.99  # white background
    dark = _dark(img).sum()
    assert 50 < dark < 0.2 * img.shape[0] * img.shape[1]


def test_png_pen_up_gap_is_not_drawn(tmp_path: Path) -> None:
    # two horizontal strokes on the same line with a wide gap between them
    seq = np.array([[0, 0, 0], [10, 0, 1], [30, 0, 0], [10, 0, 1]], dtype=np.float64)
    img = _read(save_sketch_png(tmp_path / "gap.png", seq, margin=0.0, linewidth=2.0))
    cols = _dark(img).any(axis=0)
    w = img.shape[1]
    # the sketch spans x ∈ [0, 50]; the gap x ∈ (10, 40) is the middle 60 % of the cell
    assert cols[int(0.3 * w) : int(0.7 * w)].sum() == 0
    assert cols[: int(0.15 * w)].any() and cols[int(0.85 * w) :].any()


def test_grid_png_shape_labels_and_empty_cells(tmp_path: Path) -> None:
    grid = [[TWO_STROKES, None, TWO_STROKES], [TWO_STROKES]]
    plain = _read(save_sketch_grid(tmp_path / "plain.png", grid, cell_px=64))
    # 3 columns × 2 rows of 64 px cells with 4 px gaps (4 px leading gap)
    assert plain.shape[:2] == (4 + 2 * 68, 4 + 3 * 68)
    # empty middle cell of row 0 and empty cells of row 1 are white
    assert not _dark(plain[4 : 4 + 64, 4 + 68 : 4 + 68 + 64]).any()
    assert not _dark(plain[4 + 68 :, 4 + 68 :]).any()
    assert _dark(plain[4 + 68 :, :72]).any()
    labelled = _read(
        save_sketch_grid(
            tmp_path / "labels.png",
            grid,
            cell_px=64,
            row_labels=["r0", "r1"],
            col_labels=["a", "b", "c"],
            title="title",
        )
    )
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]


def test_grid_svg_has_one_nested_svg_per_sketch(tmp_path: Path) -> None:
    grid = [[TWO_STROKES, None], [TWO_STROKES, TWO_STROKES]]
    out = save_sketch_grid(tmp_path / "g.svg", grid, col_labels=["x", "y"], common_scale=True)
    root = ET.fromstring(out.read_text())
    cells = root.findall("svg:svg", SVG_NS)
    assert len(cells) == 3
    assert all(len(c.findall("svg:polyline", SVG_NS)) == 2 for c in cells)
    assert [t.text for t in root.findall("svg:text", SVG_NS)] == ["x", "y"]


def test_common_scale_keeps_relative_sizes(tmp_path: Path) -> None:
    big = TWO_STROKES.copy()
    big[:, :2] *= 4
    out = save_sketch_grid(tmp_path / "g.svg", [[TWO_STROKES, big]], common_scale=True)
    boxes = [c.get("viewBox") for c in ET.fromstring(out.read_text()).findall("svg:svg", SVG_NS)]
    assert boxes[0].split()[2:] == boxes[1].split()[2:]
    own = save_sketch_grid(tmp_path / "h.svg", [[TWO_STROKES, big]])
    sides = [
        float(c.get("viewBox").split()[2])
        for c in ET.fromstring(own.read_text()).findall("svg:svg", SVG_NS)
    ]
    assert sides[1] == pytest.approx(4 * sides[0])


def test_temperature_and_interpolation_figures(tmp_path: Path) -> None:
    inputs = [TWO_STROKES, TWO_STROKES]
    recs = {0.1: inputs, 1.0: [TWO_STROKES, None]}
    out = save_temperature_figure(tmp_path / "t.svg", inputs, recs)
    root = ET.fromstring(out.read_text())
    assert [t.text for t in root.findall("svg:text", SVG_NS)] == ["input", "τ=0.1", "τ=1"]
    assert len(root.findall("svg:svg", SVG_NS)) == 5
    with pytest.raises(ValueError, match=r"reconstructions\[0.1\]: expected 2"):
        save_temperature_figure(tmp_path / "t.png", inputs, {0.1: [TWO_STROKES]})
    out = save_interpolation_figure(
        tmp_path / "i.svg",
        [[TWO_STROKES] * 3],
        t_values=[0, 0.5, 1],
        inputs=[(TWO_STROKES, TWO_STROKES)],
    )
    labels = [t.text for t in ET.fromstring(out.read_text()).findall("svg:text", SVG_NS)]
    assert labels == ["A", "t=0", "t=0.5", "t=1", "B"]
    out = save_four_way_interpolation(
        tmp_path / "f.svg", [[TWO_STROKES] * 3] * 3, corner_colors=["red", "green", "blue", "k"]
    )
    strokes = [
        p.get("stroke") for p in ET.fromstring(out.read_text()).iter() if p.tag.endswith("polyline")
    ]
    assert strokes[0] == "#ff0000" and strokes[-1] == "#000000"
    assert _read(save_four_way_interpolation(tmp_path / "f.png", [[TWO_STROKES] * 2] * 2)).size


def test_wrap() -> None:
    rows = wrap(list(range(7)), 3)
    assert rows == [[0, 1, 2], [3, 4, 5], [6]]


# ----------------------------------------------------------------------------- errors


def test_malformed_input_errors_name_the_cell(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sketches\[1\]\[0\]: expected shape \(N, 3\)"):
        save_sketch_grid(tmp_path / "e.png", [[TWO_STROKES], [np.zeros((4, 5))]])
    bad = TWO_STROKES.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"sketches\[0\]\[1\]: expected finite values.*row 3"):
        save_sketch_grid(tmp_path / "e.svg", [[TWO_STROKES, bad]])
    pen = TWO_STROKES.copy()
    pen[2, 2] = 0.5
    with pytest.raises(ValueError, match=r"pen_lifted.*row 2"):
        check_stroke3(pen)
    with pytest.raises(TypeError, match="numpy.ndarray or torch.Tensor"):
        check_stroke3([[0, 0, 1]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="col_labels: expected 1 labels, found 2"):
        save_sketch_grid(tmp_path / "e.png", [[TWO_STROKES]], col_labels=["a", "b"])
    with pytest.raises(ValueError, match=r"colors\[0\]: expected 2 values"):
        save_sketch_grid(tmp_path / "e.png", [[TWO_STROKES, None]], colors=[["red"]])
    with pytest.raises(ValueError, match="at least one row"):
        save_sketch_grid(tmp_path / "e.png", [])
    with pytest.raises(ValueError, match="unsupported figure format"):
        save_sketch_grid(tmp_path / "e.xyz", [[TWO_STROKES]])
    assert not list(tmp_path.iterdir())


def _learning_curve_example():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "examples" / "sketch_rnn_learning_curve.py"
    spec = importlib.util.spec_from_file_location("sketch_rnn_learning_curve", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_learning_curve_keeps_the_last_validation_record_of_each_step(tmp_path: Path) -> None:
    import json

    example = _learning_curve_example()
    rows = [
        {"step": 10, "loss": 1.0, "L_R": 0.9},  # a training record: not on the curve
        {"step": 500, "valid_L_R": 0.7, "valid_L_KL": 0.5, "valid_loss": 0.95},
        {"step": 1000, "valid_L_R": 0.6, "valid_L_KL": 0.4, "valid_loss": 0.8},
        {"step": 500, "valid_L_R": 0.65, "valid_L_KL": 0.45, "valid_loss": 0.9},  # resumed
        {
            "step": 1500,
            "valid_L_R": 0.5,
            "valid_L_KL": 0.4,
            "valid_loss": 0.7,
            "valid_L_R_n_s": 0.4,
        },
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = example.validation_curve(metrics)
    assert [r["step"] for r in curve] == [500, 1000, 1500]
    assert curve[0]["valid_L_R"] == 0.65
    # the reference evaluation's reading is kept where logged (older runs lack it)
    assert "valid_L_R_n_s" not in curve[0] and curve[2]["valid_L_R_n_s"] == 0.4
    out = example.main(["--run", f"a={metrics}", "--out", str(tmp_path / "curve.png")])
    assert imread(out).shape[0] > 100
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(SystemExit, match="no records with .valid_L_R."):
        example.validation_curve(empty)
    with pytest.raises(SystemExit):  # LABEL=PATH is required
        example.main(["--run", str(metrics), "--out", str(tmp_path / "x.png")])
