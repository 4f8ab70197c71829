"""Spatial transformer (generative/stn.py) and shared networks (generative/networks.py)."""

from __future__ import annotations

import math

import pytest
import torch

from generative.bezier import render_strokes
from generative.networks import MLP, FeatureCNN, RecurrentCore
from generative.stn import (
    affine_matrix,
    glimpse,
    inverse_transform_points,
    invert_affine,
    place,
    transform_points,
)
from tasks.data.glyphs import canonical_to_image


def random_layouts(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 5, generator=gen)
    scale = 0.3 + 0.6 * u[:, 0:2]
    shift = -0.4 + 0.8 * u[:, 2:4]
    theta = -math.pi + 2 * math.pi * u[:, 4:5]
    return torch.cat([scale, shift, theta], -1)


def test_identity_layout_is_identity_matrix():
    layout = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(affine_matrix(layout), expected)
    torch.testing.assert_close(invert_affine(layout), expected)


def test_points_round_trip_and_matrix_inverse():
    layouts = random_layouts(16)
    points = torch.randn(16, 4, 2)
    there = transform_points(points, layouts)
    torch.testing.assert_close(inverse_transform_points(there, layouts), points, atol=1e-5, rtol=0)
    forward = torch.cat([affine_matrix(layouts), torch.tensor([0.0, 0, 1]).expand(16, 1, 3)], 1)
    backward = torch.cat([invert_affine(layouts), torch.tensor([0.0, 0, 1]).expand(16, 1, 3)], 1)
    torch.testing.assert_close(forward @ backward, torch.eye(3).expand(16, 3, 3), atol=1e-5, rtol=0)


def test_isotropic_layout_matches_glyph_convention():
    layouts = random_layouts(8, seed=1)
    layouts[:, 1] = layouts[:, 0]
    points = torch.randn(8, 4, 2)
    glyph_layout = torch.stack([layouts[:, 0], layouts[:, 2], layouts[:, 3], layouts[:, 4]], -1)
    torch.testing.assert_close(
        transform_points(points, layouts), canonical_to_image(points, glyph_layout)
    )


def test_glimpse_then_place_round_trip():
    """Transform then inverse: place(glimpse(x)) recovers x inside the window, and
    glimpse(place(g)) recovers g when the window lies inside the canvas."""
    torch.manual_seed(0)
    image = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 64, 64), 5, 1, 2)  # smooth image
    layouts = torch.tensor(
        [
            [0.5, 0.5, 0.0, 0.0, 0.0],
            [0.6, 0.4, 0.2, -0.3, 0.7],
            [0.45, 0.45, -0.3, 0.25, -2.0],
            [0.35, 0.55, 0.3, 0.3, 3.0],
        ]
    )
    g = glimpse(image, layouts, 64)
    back = place(g, layouts, 64, 64)
    window = place(torch.ones_like(g), layouts, 64, 64) > 0.999
    err = (back - image).abs()[window]
    assert window.sum() > 4 * 200
    assert err.mean() < 0.02, err.mean()
    # the other direction: a glimpse-frame image placed on a larger canvas and glimpsed back
    small = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 24, 24), 3, 1, 1)
    canvas = place(small, layouts, 96, 96)
    again = glimpse(canvas, layouts, 24)
    interior = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert (again - small)[interior].abs().mean() < 0.03


def test_glimpse_of_transformed_stroke_shows_canonical_stroke():
    """A stroke drawn at l ⊙ s on the canvas appears at s in the glimpse (consistency of the
    point and image transforms)."""
    canonical = torch.tensor([[[-0.8, 0.2], [-0.2, -0.7], [0.3, 0.7], [0.8, -0.1]]])
    layout = torch.tensor([[0.45, 0.45, 0.2, -0.1, 0.6]])
    canvas = render_strokes(transform_points(canonical, layout), 0.03, 0.3, 100, 100)
    seen = glimpse(canvas.unsqueeze(1), layout, 40)[:, 0]
    direct = render_strokes(canonical, 0.03 / 0.45, 0.3, 40, 40)
    corr = torch.corrcoef(torch.stack([seen.flatten(), direct.flatten()]))[0, 1]
    assert corr > 0.95, corr


def test_glimpse_gradients_reach_layout_and_image():
    image = torch.rand(2, 1, 20, 20, requires_grad=True)
    layout = torch.tensor([[0.5, 0.4, 0.1, 0.0, 0.3], [0.7, 0.7, -0.2, 0.1, -0.5]])
    layout.requires_grad_(True)
    glimpse(image, layout, 8).square().sum().backward()
    assert image.grad.abs().sum() > 0
    assert (layout.grad.abs() > 0).all()


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="layout"):
        affine_matrix(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="one per image"):
        glimpse(torch.zeros(2, 1, 5, 5), torch.zeros(3, 5), 4)
    with pytest.raises(ValueError, match="images"):
        glimpse(torch.zeros(2, 5, 5), torch.zeros(2, 5), 4)


def test_networks_shapes_and_init():
    cnn = FeatureCNN(20, 20)
    assert cnn(torch.rand(3, 1, 20, 20)).shape == (3, 256)
    assert [m.out_channels for m in cnn.convs if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in cnn.modules())
    with pytest.raises(ValueError, match="FeatureCNN"):
        cnn(torch.rand(3, 1, 19, 20))
    mlp = MLP(7, 5)
    assert mlp(torch.rand(2, 3, 7)).shape == (2, 3, 5)
    assert [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [
        256,
        256,
        5,
    ]
    mlp.init_output(torch.tensor([1.0, 2, 3, 4, 5]))
    torch.testing.assert_close(mlp(torch.randn(4, 7)), torch.tensor([1.0, 2, 3, 4, 5]).expand(4, 5))
    core = RecurrentCore(6)
    h = core(torch.rand(4, 6), core.initial(4))
    assert h.shape == (4, 256)
