"""RAM's glimpse sensor and networks (generative/glimpse.py) and the translated/cluttered MNIST
generators (tasks/data/cluttered.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generative.glimpse import (
    GlimpseNetwork,
    LocationNetwork,
    clip_locations,
    glimpse_centres,
    glimpse_origins,
    glimpse_sensor,
    location_distribution,
)
from tasks.data import DataError
from tasks.data.batches import ClutteredBatches
from tasks.data.cluttered import cluttered_mnist, render_layout, sample_layout, translated_mnist
from tasks.data.cluttered_sets import CLUTTERED_NAMES, CLUTTERED_SPECS, load_cluttered
from tasks.data.mnist import mnist_split_arrays

# ============================================================================ glimpse sensor
# 8×8 image with pixel (row r, column c) = 8r + c + 1, so zero padding is distinguishable.
IMAGE8 = (torch.arange(64.0) + 1).view(1, 1, 8, 8)


# (l_x, l_y) → hand-computed (scale-0 patch, scale-1 patch) for size 2, scales 2.
# Centres c = 4(1 + l) − ½; first row/column of a w-wide patch = ⌊c − (w − 1)/2 + ½⌋.
HAND_CASES = {
    # centre: c = (3.5, 3.5): scale 0 rows/cols 3..4; scale 1 rows/cols 2..5 in 2×2 blocks
    (0.0, 0.0): ([[28, 29], [36, 37]], [[23.5, 25.5], [39.5, 41.5]]),
    # top-left corner: c = (−½, −½): scale 0 rows/cols −1..0; scale 1 rows/cols −2..1
    (-1.0, -1.0): ([[0, 0], [0, 1]], [[0, 0], [0, 5.5]]),
    # top-right corner (x is the column): c = (7.5, −½): columns 7..8 / 6..9, rows −1..0 / −2..1
    (1.0, -1.0): ([[0, 0], [8, 0]], [[0, 0], [11.5, 0]]),
    # off-grid: c = (1.5, 4.5): columns 1..2 / 0..3, rows 4..5 / 3..6
    (-0.5, 0.25): ([[34, 35], [42, 43]], [[29.5, 31.5], [45.5, 47.5]]),
}


def test_hand_computed_retina_on_8x8_image():
    locations = torch.tensor(list(HAND_CASES))
    images = IMAGE8.expand(len(locations), 1, 8, 8)
    retina = glimpse_sensor(images, locations, size=2, scales=2)
    assert retina.shape == (4, 2, 1, 2, 2)
    for b, (fine, coarse) in enumerate(HAND_CASES.values()):
        torch.testing.assert_close(retina[b, 0, 0], torch.tensor(fine, dtype=torch.float32))
        torch.testing.assert_close(retina[b, 1, 0], torch.tensor(coarse, dtype=torch.float32))


def test_centres_and_origins_follow_the_documented_mapping():
    # Rectangular 6×10 image: x is horizontal (width 10), y vertical (height 6).
    locations = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])
    centres = glimpse_centres(locations, height=6, width=10)
    expected = torch.tensor(
        [[-0.5, -0.5], [9.5, 5.5], [4.5, 2.5], [9.5, -0.5]], dtype=torch.float64
    )
    torch.testing.assert_close(centres, expected)
    origins = glimpse_origins(locations, 6, 10, size=2, scales=3)  # (row, column) per scale
    assert origins.shape == (4, 3, 2) and origins.dtype == torch.int64
    # l = ±1 puts an even patch exactly half outside, at both corners alike.
    assert origins[0].tolist() == [[-1, -1], [-2, -2], [-4, -4]]
    assert origins[1].tolist() == [[5, 9], [4, 8], [2, 6]]
    assert origins[2].tolist() == [[2, 4], [1, 3], [-1, 1]]
    assert origins[3].tolist() == [[-1, 9], [-2, 8], [-4, 6]]


def _reference_retina(image: torch.Tensor, loc: tuple[float, float], size: int, scales: int):
    """Per-example, per-pixel implementation of the documented definition."""
    channels, height, width = image.shape
    c_x, c_y = width / 2 * (1 + loc[0]) - 0.5, height / 2 * (1 + loc[1]) - 0.5
    out = []
    for k in range(scales):
        w, f = size * 2**k, 2**k
        r0 = math.floor(c_y - (w - 1) / 2 + 0.5)
        c0 = math.floor(c_x - (w - 1) / 2 + 0.5)
        patch = torch.zeros(channels, w, w, dtype=image.dtype)
        for i in range(w):
            for j in range(w):
                if 0 <= r0 + i < height and 0 <= c0 + j < width:
                    patch[:, i, j] = image[:, r0 + i, c0 + j]
        out.append(patch.reshape(channels, size, f, size, f).mean((2, 4)))
    return torch.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_sensor_equals_per_example_reference(channels):
    gen = torch.Generator().manual_seed(0)
    batch, height, width, size, scales = 6, 9, 12, 3, 3  # odd size and rectangular image
    images = torch.rand(batch, channels, height, width, generator=gen, dtype=torch.float64)
    locations = torch.rand(batch, 2, generator=gen) * 3 - 1.5  # some outside [-1, 1]²
    retina = glimpse_sensor(images, locations, size=size, scales=scales)
    assert retina.shape == (batch, scales, channels, size, size)
    assert retina.dtype == torch.float64
    for b in range(batch):
        single = glimpse_sensor(images[b : b + 1], locations[b : b + 1], size=size, scales=scales)
        torch.testing.assert_close(retina[b : b + 1], single, rtol=0, atol=0)
        loc = (float(locations[b, 0]), float(locations[b, 1]))
        reference = _reference_retina(images[b], loc, size, scales)
        torch.testing.assert_close(retina[b], reference)


def test_one_full_size_scale_reads_the_image_and_far_glimpses_read_zeros():
    image = torch.rand(2, 3, 8, 8)
    whole = glimpse_sensor(image, torch.zeros(2, 2), size=8, scales=1)
    torch.testing.assert_close(whole[:, 0], image, rtol=0, atol=0)
    far = glimpse_sensor(image, torch.tensor([[5.0, -7.0], [-3.0, 0.0]]), size=2, scales=3)
    assert far.shape == (2, 3, 3, 2, 2) and (far == 0).all()


def test_gradient_reaches_exactly_the_pixels_seen_with_area_weights():
    image = IMAGE8.clone().requires_grad_(True)
    glimpse_sensor(image, torch.zeros(1, 2), size=2, scales=2).sum().backward()
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 0.25  # each pixel of the 4×4 patch is a quarter of one pooled value
    expected[3:5, 3:5] += 1.0  # the central 2×2 patch at full resolution
    torch.testing.assert_close(image.grad[0, 0], expected)


def test_sensor_rejects_bad_arguments_with_expected_and_found():
    images = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"expected shape \(B, 2\).*found \(2, 3\)"):
        glimpse_sensor(images, torch.zeros(2, 3), size=2, scales=1)
    with pytest.raises(ValueError, match="expected 2 locations.*found 3"):
        glimpse_sensor(images, torch.zeros(3, 2), size=2, scales=1)
    with pytest.raises(ValueError, match="finite"):
        glimpse_sensor(images, torch.tensor([[0.0, math.nan], [0.0, 0.0]]), size=2, scales=1)
    with pytest.raises(ValueError, match="expected a floating-point \\(B, C, H, W\\)"):
        glimpse_sensor(torch.zeros(2, 8, 8), torch.zeros(2, 2), size=2, scales=1)
    with pytest.raises(ValueError, match="scales: expected an integer >= 1, found 0"):
        glimpse_sensor(images, torch.zeros(2, 2), size=2, scales=0)


def test_clip_locations():
    loc = torch.tensor([[-3.0, 0.25], [1.5, -1.0], [0.999, -0.5]])
    expected = torch.tensor([[-1.0, 0.25], [1.0, -1.0], [0.999, -0.5]])
    torch.testing.assert_close(clip_locations(loc), expected, rtol=0, atol=0)


# ============================================================================ networks
@pytest.mark.parametrize("channels", [1, 3])
def test_glimpse_network_shapes_defaults_and_gradients(channels):
    torch.manual_seed(0)
    net = GlimpseNetwork(channels, size=4, scales=2)
    assert net.glimpse_in.weight.shape == (128, 2 * channels * 16)  # h_g: 128 (sec. 4)
    assert net.location_in.weight.shape == (128, 2)  # h_l: 128
    assert net.glimpse_out.out_features == net.location_out.out_features == 256  # g: 256
    images = torch.rand(5, channels, 16, 16, requires_grad=True)
    locations = torch.rand(5, 2) * 2 - 1
    g = net(images, locations)
    assert g.shape == (5, 256) and (g >= 0).all()
    assert net.retina(images, locations).shape == (5, 2, channels, 4, 4)
    g.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match=f"expected {channels} channels, found {channels + 1}"):
        net(torch.rand(5, channels + 1, 16, 16), locations)


def test_location_network_mean_and_policy():
    torch.manual_seed(0)
    net = LocationNetwork(16, std=0.2)
    h = torch.randn(7, 16) * 5  # large states: an unsquashed mean would leave [-1, 1]
    mean = net(h)
    assert mean.shape == (7, 2) and (mean.abs() <= 1).all()
    torch.testing.assert_close(mean, torch.tanh(net.linear(h)))
    plain = LocationNetwork(16, squash=False)
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(plain(h), net.linear(h))
    assert (plain(h).abs() > 1).any()

    policy = net.distribution(h)
    assert policy.batch_shape == (7,) and policy.event_shape == (2,)
    sample = policy.sample()
    expected = torch.distributions.Normal(mean, 0.2).log_prob(sample).sum(-1)
    torch.testing.assert_close(policy.log_prob(sample), expected)
    assert location_distribution(torch.zeros(3, 2), 0.5).sample((4,)).shape == (4, 3, 2)
    with pytest.raises(ValueError, match="expected > 0, found 0"):
        LocationNetwork(4, std=0.0)
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 2\), found \(3, 3\)"):
        location_distribution(torch.zeros(3, 3), 0.1)


# ============================================================================ translated MNIST
def _full_ink_digits(n: int, seed: int) -> torch.Tensor:
    """Digits with ink up to their borders (unlike MNIST), so any cropping would lose ink."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)


def test_translated_shapes_range_ink_and_position():
    digits = _full_ink_digits(16, 0)
    images = translated_mnist(digits, canvas=40, generator=torch.Generator().manual_seed(1))
    assert images.shape == (16, 40, 40) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    grey = digits.float() / 255
    # all the ink is on the canvas, hence the whole digit lies inside
    torch.testing.assert_close(images.sum((1, 2)), grey.sum((1, 2)))
    # the documented draw order lets the layout be replayed: the digit sits at `positions`
    layout = sample_layout(16, canvas=40, generator=torch.Generator().manual_seed(1))
    for n, (r, c) in enumerate(layout.positions.tolist()):
        assert 0 <= r <= 12 and 0 <= c <= 12
        torch.testing.assert_close(images[n, r : r + 28, c : c + 28], grey[n], rtol=0, atol=0)
    # float input in [0, 1] and numpy input give the same canvases
    again = translated_mnist(grey.numpy(), canvas=40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, images, rtol=0, atol=0)


def test_translated_is_deterministic_given_the_seed_and_varies_with_it():
    digits = _full_ink_digits(8, 0)
    a, b, c = (
        translated_mnist(digits, generator=torch.Generator().manual_seed(s)) for s in (3, 3, 4)
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (8, 60, 60)


def test_generator_input_validation():
    with pytest.raises(DataError, match="expected float intensities in \\[0, 1\\], found range"):
        translated_mnist(torch.full((2, 28, 28), 2.0))
    with pytest.raises(DataError, match="expected uint8 or floating-point pixels, found"):
        translated_mnist(torch.zeros(2, 28, 28, dtype=torch.int32))
    with pytest.raises(DataError, match="to fit the 20x20 canvas"):
        translated_mnist(torch.zeros(2, 28, 28), canvas=20)
    with pytest.raises(DataError, match="clutter_source"):
        cluttered_mnist(torch.zeros(2, 28, 28), torch.zeros(28, 28))
    layout = sample_layout(2, canvas=40)
    bad = layout._replace(positions=torch.tensor([[0, 0], [13, 0]]))
    with pytest.raises(DataError, match="digit positions in 0..12, found 0..13"):
        render_layout(torch.zeros(2, 28, 28), bad, canvas=40)


# ============================================================================ cluttered MNIST
def test_clutter_on_an_empty_digit_lies_in_at_most_num_clutter_boxes():
    k, canvas = 4, 60
    empty = torch.zeros(32, 28, 28)
    source = _full_ink_digits(10, 1)  # every 8×8 crop is fully inked
    images = cluttered_mnist(
        empty, source, canvas=canvas, num_clutter=k, generator=torch.Generator().manual_seed(2)
    )
    assert images.shape == (32, canvas, canvas) and images.min() >= 0 and images.max() <= 1
    ink = images > 0
    assert (ink.sum((1, 2)) <= k * 64).all() and (ink.sum((1, 2)) >= 64).all()
    layout = sample_layout(
        32,
        canvas=canvas,
        num_clutter=k,
        num_sources=10,
        generator=torch.Generator().manual_seed(2),
    )
    boxes = torch.zeros_like(ink)
    for n in range(32):
        for j, (r, c) in enumerate(layout.clutter_positions[n].tolist()):
            boxes[n, r : r + 8, c : c + 8] = True
            # each box holds at least the crop of its source, exactly where nothing overlaps
            sr, sc = layout.clutter_crops[n, j].tolist()
            crop = source[layout.clutter_sources[n, j], sr : sr + 8, sc : sc + 8].float() / 255
            assert (images[n, r : r + 8, c : c + 8] >= crop).all()
    assert torch.equal(ink, boxes)  # ink exactly fills the (fully inked) boxes, nothing else


def test_clutter_is_combined_by_maximum_and_stays_in_range():
    digits = torch.full((64, 28, 28), 0.5)
    source = torch.full((5, 28, 28), 0.25)
    images = cluttered_mnist(
        digits, source, canvas=40, num_clutter=8, generator=torch.Generator().manual_seed(0)
    )
    # max(0.5, 0.25) = 0.5 (a sum would give 0.75; overlapping clutter stays 0.25, not 0.5)
    assert set(images.unique().tolist()) == {0.0, 0.25, 0.5}
    assert ((images == 0.5).sum((1, 2)) == 28 * 28).all()  # the digit is intact


def test_clutter_never_comes_from_the_digit_itself():
    exclude = torch.tensor([0, 1, 1, 0, 1])
    layout = sample_layout(
        5, canvas=60, num_clutter=8, num_sources=2, exclude=exclude, generator=None
    )
    assert torch.equal(layout.clutter_sources, (1 - exclude)[:, None].expand(5, 8))
    big = sample_layout(
        500,
        canvas=60,
        num_clutter=8,
        num_sources=7,
        exclude=torch.arange(500) % 7,
        generator=torch.Generator().manual_seed(0),
    )
    assert (big.clutter_sources != (torch.arange(500) % 7)[:, None]).all()
    assert set(big.clutter_sources.unique().tolist()) == set(range(7))
    assert big.clutter_crops.min() == 0 and big.clutter_crops.max() == 20
    assert big.clutter_positions.min() == 0 and big.clutter_positions.max() == 52


def test_cluttered_batches_are_a_deterministic_function_of_seed_and_step():
    n = 20
    digits = torch.zeros(n, 28, 28)
    for i in range(n):  # digit i has a unique intensity, so the canvas maximum identifies it
        digits[i, 10:18, 10:18] = (i + 1) / n
    labels = torch.arange(n) % 10
    make = lambda seed, k=0: ClutteredBatches(  # noqa: E731
        digits, labels, 6, canvas=40, num_clutter=k, seed=seed
    )
    a, b, c = make(0), make(0), make(1)
    assert a.batches_per_epoch == 3 and a.epoch(6) == 2.0
    x, y = a.batch(4)
    assert x.shape == (6, 1, 40, 40) and x.dtype == torch.float32 and y.dtype == torch.int64
    for step in (0, 4, 7):
        for t1, t2 in zip(a.batch(step), b.batch(step), strict=True):
            assert torch.equal(t1, t2)
    assert not torch.equal(a.batch(0)[0], c.batch(0)[0])
    assert not torch.equal(a.batch(0)[0], a.batch(3)[0])  # same digits next epoch, new places
    # labels and images belong to the same source digits
    index = a.indices(4)
    assert torch.equal(y, labels[index])
    torch.testing.assert_close(x.amax((1, 2, 3)), (index + 1).float() / n)
    # one epoch visits distinct digits
    epoch = torch.cat([a.indices(s) for s in range(3)])
    assert len(epoch.unique()) == 18
    # with clutter: values stay in range, still reproducible
    cl = make(0, k=4)
    assert torch.equal(cl.batch(2)[0], make(0, k=4).batch(2)[0])
    assert cl.batch(2)[0].max() <= 1
    with pytest.raises(DataError, match="batch size: expected 1..20"):
        ClutteredBatches(digits, labels, 21, canvas=40, num_clutter=0)


# ============================================================================ fixed sets (real)
@pytest.mark.parametrize("name", CLUTTERED_NAMES)
def test_load_cluttered_fixed_sets(name, real_data_dir: Path):
    spec = CLUTTERED_SPECS[name]
    data = load_cluttered(name, "test", data_dir=real_data_dir, num_examples=40, seed=1)
    side = spec.canvas
    assert data.images.shape == (40, 1, side, side) and data.binarization == "none"
    assert data.images.min() >= 0 and data.images.max() <= 1
    json.dumps(data.info)
    assert data.info["recipe"]["num_clutter"] == spec.num_clutter
    digits, labels, _ = mnist_split_arrays("test", real_data_dir)
    index = data.extras["index"]
    assert (index.diff() > 0).all()
    assert torch.equal(data.labels, torch.from_numpy(labels[index.numpy()].astype(np.int64)))
    assert data.extras["clutter_sources"].shape == (40, spec.num_clutter)
    assert (data.extras["clutter_sources"] != index[:, None]).all()
    for n, (r, c) in enumerate(data.extras["positions"].tolist()):
        digit = torch.from_numpy(digits[index[n]].astype(np.float32)) / 255
        window = data.images[n, 0, r : r + 28, c : c + 28]
        if spec.num_clutter == 0:
            torch.testing.assert_close(window, digit, rtol=0, atol=0)
            assert data.images[n].sum() == pytest.approx(digit.sum().item(), rel=1e-6)
        else:
            assert (window >= digit).all()  # clutter never removes digit ink
    # same canvases for another load and for the same digit in another subset (any seed)
    again = load_cluttered(name, "test", data_dir=real_data_dir, num_examples=40, seed=1)
    assert torch.equal(again.images, data.images)
    other = load_cluttered(name, "test", data_dir=real_data_dir, num_examples=2000, seed=2)
    common, here, there = np.intersect1d(index, other.extras["index"], return_indices=True)
    assert len(common) > 0
    assert torch.equal(data.images[here], other.images[there])


def test_load_cluttered_errors():  # raised before any file is read
    with pytest.raises(DataError, match="unknown cluttered dataset 'mnist_cluttered_80'"):
        load_cluttered("mnist_cluttered_80", "test")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_cluttered("mnist_cluttered_60", "dev")
    with pytest.raises(DataError, match="num_examples must be >= 1, found 0"):
        load_cluttered("mnist_cluttered_60", "test", num_examples=0)
