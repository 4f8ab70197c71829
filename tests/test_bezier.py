"""Tests of the differentiable Bézier renderer (DooD appendix B.1, Eqs. 10–14)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.bezier import (
    bezier_points,
    compose_canvas,
    max_normalize,
    normalize_stroke,
    pixel_centres,
    rasterize_curve,
    render_strokes,
    to_normalized,
    to_pixel,
)


def de_casteljau(control: torch.Tensor, t: float) -> torch.Tensor:
    """Independent reference evaluation of a Bézier curve at ``t`` (``control``: (J, 2))."""
    points = control.clone()
    while points.shape[0] > 1:
        points = (1 - t) * points[:-1] + t * points[1:]
    return points[0]


def test_bezier_points_matches_de_casteljau_and_endpoints() -> None:
    gen = torch.Generator().manual_seed(0)
    cp = torch.rand(3, 5, 4, 2, generator=gen, dtype=torch.float64) * 2 - 1
    curve = bezier_points(cp, num_points=11)
    assert curve.shape == (3, 5, 11, 2)
    # Eq. 10 endpoints are exactly the first/last control points.
    assert torch.equal(curve[..., 0, :], cp[..., 0, :])
    assert torch.equal(curve[..., -1, :], cp[..., -1, :])
    for i, t in enumerate(torch.linspace(0, 1, 11, dtype=torch.float64).tolist()):
        ref = de_casteljau(cp[1, 2], t)
        torch.testing.assert_close(curve[1, 2, i], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_control", [1, 2, 3, 5])
def test_bezier_points_other_degrees(num_control: int) -> None:
    cp = torch.randn(num_control, 2, dtype=torch.float64)
    curve = bezier_points(cp, num_points=7)
    for i, t in enumerate(torch.linspace(0, 1, 7, dtype=torch.float64).tolist()):
        torch.testing.assert_close(curve[i], de_casteljau(cp, t))


def test_rasterize_matches_brute_force_gaussian_sum() -> None:
    """The separable evaluation equals the literal Σ_n exp(-((h-b_y)²+(w-b_x)²)/σ²) of Eq. 11."""
    gen = torch.Generator().manual_seed(1)
    cp = torch.rand(2, 4, 2, generator=gen, dtype=torch.float64) * 2 - 1
    sigma = torch.tensor([0.07, 0.2], dtype=torch.float64)
    height, width = 9, 13
    curve = bezier_points(cp, 20)
    raw = rasterize_curve(curve, sigma, height, width)
    ys = pixel_centres(height, dtype=torch.float64)[:, None, None]  # rows
    xs = pixel_centres(width, dtype=torch.float64)[None, :, None]  # columns
    for b in range(2):
        d2 = (ys - curve[b, :, 1]) ** 2 + (xs - curve[b, :, 0]) ** 2  # (H, W, S)
        ref = torch.exp(-d2 / sigma[b] ** 2).sum(-1)
        torch.testing.assert_close(raw[b], ref, rtol=1e-9, atol=1e-12)


def test_renderer_has_no_subnormal_values_or_gradients() -> None:
    # Thin strokes, partly off the canvas: the unfloored tails of Eq. 11 multiply into float32
    # subnormals, which slow every product they enter; the floored factors give exact zeros.
    gen = torch.Generator().manual_seed(3)
    cp = (torch.rand(64, 4, 2, generator=gen) * 3 - 1.5).requires_grad_()
    images = render_strokes(cp, 0.03, 0.5, 50, 50)
    (grad,) = torch.autograd.grad((images * torch.rand(images.shape, generator=gen)).sum(), cp)
    tiny = torch.finfo(torch.float32).tiny
    for t in (images, grad):
        assert not ((t != 0) & (t.abs() < tiny)).any()
    curve = bezier_points(cp.detach(), 100)  # the unfloored Gaussians do produce them here
    d2 = (pixel_centres(50)[None, :, None] - curve[:, None, :, 1]) ** 2
    tails = torch.exp(-d2 / 0.03**2)
    assert ((tails > 0) & (tails < tiny)).any()


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=8, max_size=8),
    # sigma >= ~half the pixel spacing, so some pixel centre always sees the curve (far below
    # that, a curve between pixel centres rasterises to < MAXNORM_EPS and renders empty).
    sigma=st.floats(0.06, 0.5),
    omega0=st.floats(0.05, 5.0),
)
def test_render_range_and_peak(points: list[float], sigma: float, omega0: float) -> None:
    cp = torch.tensor(points, dtype=torch.float32).reshape(4, 2)
    image = render_strokes(cp, sigma, omega0, 16, 20)
    assert image.shape == (16, 20)
    assert torch.isfinite(image).all()
    assert image.min() >= 0.0 and image.max() <= 1.0
    # After Eq. 12 the brightest pixel is exactly 1, so Eq. 13 maps it to tanh(1/omega0).
    assert image.max().item() == pytest.approx(math.tanh(1.0 / omega0), rel=1e-5)
    canvas = compose_canvas(torch.stack([image, image.flip(-1)]), 0.3)
    assert canvas.min() >= 0.0 and canvas.max() <= 1.0


def test_gradients_reach_every_control_point_and_sigma() -> None:
    gen = torch.Generator().manual_seed(2)
    cp = (torch.rand(2, 3, 4, 2, generator=gen) * 1.6 - 0.8).requires_grad_()
    sigma = torch.full((2, 3), 0.1).requires_grad_()
    omega0 = torch.full((2, 3), 0.5).requires_grad_()
    omega1 = torch.full((2,), 0.7).requires_grad_()
    strokes = render_strokes(cp, sigma, omega0, 20, 24)
    canvas = compose_canvas(strokes, omega1)
    weights = torch.rand(canvas.shape, generator=gen)
    (canvas * weights).sum().backward()
    for name, tensor in [("cp", cp), ("sigma", sigma), ("omega0", omega0), ("omega1", omega1)]:
        assert tensor.grad is not None, name
        assert torch.isfinite(tensor.grad).all(), name
    # every control point (each of the 4 per stroke) gets a nonzero gradient
    assert (cp.grad.abs().sum(-1) > 0).all()
    assert (sigma.grad.abs() > 0).all()
    assert (omega0.grad.abs() > 0).all() and (omega1.grad.abs() > 0).all()


def test_no_grad_fast_path_matches_autograd_path() -> None:
    cp = torch.rand(5, 4, 2) * 2 - 1
    sigma = torch.rand(5) * 0.1 + 0.03
    with torch.no_grad():
        fast = render_strokes(cp, sigma, 0.4, 17, 23)
    slow = render_strokes(cp.clone().requires_grad_(), sigma, 0.4, 17, 23)
    assert torch.equal(fast, slow.detach())


@pytest.mark.parametrize(("row", "col"), [(5, 20), (0, 0), (19, 29), (12, 3)])
def test_degenerate_curve_peaks_at_expected_pixel(row: int, col: int) -> None:
    height, width = 20, 30  # non-square, so swapped axes would fail
    point = to_normalized(torch.tensor([float(col), float(row)]), height, width)
    cp = point.expand(4, 2)
    image = render_strokes(cp, 0.05, 0.5, height, width)
    peak = int(image.argmax())
    assert divmod(peak, width) == (row, col)
    # symmetric falloff around the peak along both axes (when neighbours exist)
    if 0 < col < width - 1:
        assert image[row, col - 1].item() == pytest.approx(image[row, col + 1].item(), rel=1e-4)
    if 0 < row < height - 1:
        assert image[row - 1, col].item() == pytest.approx(image[row + 1, col].item(), rel=1e-4)


def test_axis_convention_x_right_y_down() -> None:
    height, width = 12, 16
    # A horizontal line along the top edge (y = -1) inks row 0 across all columns.
    top = torch.tensor([[-1.0, -1.0], [-0.3, -1.0], [0.3, -1.0], [1.0, -1.0]])
    image = render_strokes(top, 0.05, 0.3, height, width)
    assert (image[0] > 0.9).all()
    assert (image[-1] < 1e-3).all()
    # A vertical line at x = 1 inks the last column.
    right = torch.stack([torch.ones(4), torch.linspace(-1, 1, 4)], -1)
    image = render_strokes(right, 0.05, 0.3, height, width)
    assert (image[:, -1] > 0.9).all() and (image[:, 0] < 1e-3).all()


def test_pixel_mapping_round_trip() -> None:
    pix = torch.tensor([[0.0, 0.0], [15.0, 11.0], [7.5, 3.25]])
    norm = to_normalized(pix, 12, 16)
    torch.testing.assert_close(norm[0], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(norm[1], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(to_pixel(norm, 12, 16), pix)


def test_shapes_with_several_leading_dims_and_broadcasting() -> None:
    cp = torch.rand(2, 3, 5, 4, 2) * 2 - 1
    out = render_strokes(cp, torch.full((5,), 0.08), 0.5, 10, 14, num_points=30)
    assert out.shape == (2, 3, 5, 10, 14)
    # each stroke is rendered independently of its batch neighbours
    single = render_strokes(cp[1, 2, 3], 0.08, 0.5, 10, 14, num_points=30)
    torch.testing.assert_close(out[1, 2, 3], single)
    canvas = compose_canvas(out, torch.full((2, 3), 0.6))
    assert canvas.shape == (2, 3, 10, 14)
    torch.testing.assert_close(canvas, torch.tanh(out.sum(-3) / 0.6))


def test_compose_canvas_mask_drops_strokes() -> None:
    strokes = torch.rand(4, 3, 8, 8)
    mask = torch.tensor([[1, 0, 1]] * 4, dtype=torch.bool)
    canvas = compose_canvas(strokes, 0.5, mask)
    torch.testing.assert_close(canvas, torch.tanh((strokes[:, 0] + strokes[:, 2]) / 0.5))
    assert canvas.min() >= 0 and canvas.max() <= 1


def test_curve_far_outside_renders_empty_not_nan() -> None:
    cp = torch.full((4, 2), 30.0)
    image = render_strokes(cp, 0.05, 0.5, 8, 8)
    assert torch.isfinite(image).all() and image.abs().max() == 0
    assert torch.equal(max_normalize(torch.zeros(2, 3, 3)), torch.zeros(2, 3, 3))


def test_invalid_arguments_raise_clear_errors() -> None:
    cp = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        render_strokes(cp, torch.tensor(-0.1), 0.5, 8, 8)
    with pytest.raises(ValueError, match="omega0 must be > 0"):
        render_strokes(cp, 0.1, 0.0, 8, 8)
    with pytest.raises(ValueError, match=r"\(\.\.\., J, 2\)"):
        bezier_points(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="mask must have shape"):
        compose_canvas(torch.zeros(2, 3, 4, 4), 0.5, torch.ones(2, 2))


def test_separable_raster_backward_passes_gradcheck() -> None:
    """The hand-written backward of Eq. 11 against finite differences (float64)."""
    gen = torch.Generator().manual_seed(3)
    curve = (torch.rand(3, 7, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    sigma = (0.15 + 0.1 * torch.rand(3, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, s: rasterize_curve(c, s, 6, 5), (curve, sigma))


def test_scalar_sigma_and_broadcast_sigma_gradients() -> None:
    cp = (torch.rand(2, 3, 4, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    sigma = torch.tensor(0.12, dtype=torch.float64, requires_grad=True)  # one σ for all strokes
    render_strokes(cp, sigma, 0.5, 9, 11, num_points=12).sum().backward()
    assert sigma.grad is not None and torch.isfinite(sigma.grad) and sigma.grad != 0
    per_stroke = sigma.detach().expand(2, 3).clone().requires_grad_()
    render_strokes(cp.detach(), per_stroke, 0.5, 9, 11, num_points=12).sum().backward()
    torch.testing.assert_close(per_stroke.grad.sum(), sigma.grad)


def test_render_equals_composition_of_eqs_12_and_13() -> None:
    """The fused Eqs. 12–13 of render_strokes equal the separate public functions."""
    cp = torch.rand(4, 5, 2) * 1.6 - 0.8
    sigma, omega0 = torch.rand(4) * 0.05 + 0.04, torch.rand(4) * 0.5 + 0.2
    raw = rasterize_curve(bezier_points(cp, 50), sigma, 13, 17)
    separate = normalize_stroke(max_normalize(raw), omega0)
    torch.testing.assert_close(render_strokes(cp, sigma, omega0, 13, 17, 50), separate)


def test_matches_dense_reference_of_benchmark() -> None:
    """Values and gradients equal the dense (B, K, H, W, S) reference of the renderer benchmark."""
    from benchmarks.references.renderer import Inputs, dense_render, make_inputs, ours_render

    inputs = make_inputs(2, 3, 5, seed=4, dtype=torch.float64)
    leaves_d = [t.clone().requires_grad_() for t in inputs]
    leaves_o = [t.clone().requires_grad_() for t in inputs]
    strokes_d, canvas_d = dense_render(Inputs(*leaves_d), 12, 14, 30, detach_max=False)
    strokes_o, canvas_o = ours_render(Inputs(*leaves_o), 12, 14, 30)
    torch.testing.assert_close(strokes_o, strokes_d)
    torch.testing.assert_close(canvas_o, canvas_d)
    weights = torch.rand(12, 14, dtype=torch.float64)
    (canvas_d * weights).sum().backward()
    (canvas_o * weights).sum().backward()
    for a, b in zip(leaves_o, leaves_d, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_rasterize_rejects_bad_curve_shape() -> None:
    with pytest.raises(ValueError, match=r"curve must have shape \(\.\.\., S, 2\)"):
        rasterize_curve(torch.zeros(5, 3), 0.1, 4, 4)


def test_faint_stroke_outside_the_canvas_stays_faint() -> None:
    """Eq. 12 with the official ``safe_div`` threshold: a stroke 6 px outside a 28×28 canvas has
    a raster max far below ``MAXNORM_EPS`` and is not divided, so it renders ≤ 1e-4 (a floor of
    1e-12 made it a 0.96 border line); a stroke inside still peaks at tanh(1/ω0)."""
    h = w = 28
    px = 2.0 / (w - 1)  # one pixel in normalised units
    outside = torch.tensor([[-0.8, -1 - 6 * px], [-0.2, -1 - 6 * px], [0.3, -1 - 6 * px]])
    sigma, omega0 = 0.06, 0.5
    faint = render_strokes(outside.unsqueeze(0), sigma, omega0, h, w)
    assert faint.max().item() < 1e-4
    inside = render_strokes((outside + torch.tensor([0.0, 1.0])).unsqueeze(0), sigma, omega0, h, w)
    assert inside.max().item() == pytest.approx(math.tanh(1 / omega0), rel=1e-5)
    raw = torch.full((1, 3, 3), 5e-5)
    torch.testing.assert_close(max_normalize(raw), raw)  # below the threshold: left as it is
    torch.testing.assert_close(max_normalize(raw * 10).amax(), torch.tensor(1.0))
