"""DRAW's Gaussian filterbanks, read and write (Eqs. 19–29)."""

import pytest
import torch

from generative.attention import (
    AttentionParams,
    AttentiveRead,
    AttentiveWrite,
    attention_params,
    filter_centres,
    filterbank,
    filterbanks,
    read_patch,
    write_patch,
)


def _params(batch, g_x, g_y, delta, sigma2, gamma=1.0):
    full = lambda v: torch.full((batch,), float(v), dtype=torch.float64)  # noqa: E731
    return AttentionParams(full(g_x), full(g_y), full(delta), full(sigma2), full(gamma))


def test_eqs_22_24_initial_window_spans_the_image():
    # g̃ = 0 and δ̃ = 1: the grid is centred and its outer filters sit on pixels 1 and A (Eq. 24).
    height, width, size = 20, 30, 6
    raw = torch.zeros(1, 5)
    p = attention_params(raw, height, width, size)
    assert p.g_x.item() == pytest.approx((width + 1) / 2)
    assert p.g_y.item() == pytest.approx((height + 1) / 2)
    mu_x = filter_centres(p.g_x, p.delta, size)[0]
    assert mu_x[0].item() == pytest.approx(1.0) and mu_x[-1].item() == pytest.approx(width)
    assert torch.allclose(mu_x.diff(), p.delta.expand(size - 1))
    assert p.sigma2.item() == pytest.approx(1.0) and p.gamma.item() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [1, 2, 5, 12])
def test_filterbank_rows_are_normalised_and_nonnegative(size):
    torch.manual_seed(0)
    height, width = 17, 23
    raw = torch.randn(8, 5) * 0.3  # windows near the image
    p = attention_params(raw, height, width, size)
    f_x, f_y = filterbanks(p, height, width, size)
    assert f_x.shape == (8, size, width) and f_y.shape == (8, size, height)
    assert (f_x >= 0).all() and (f_y >= 0).all()
    inside_x = (filter_centres(p.g_x, p.delta, size) - (width + 1) / 2).abs() < width / 2
    torch.testing.assert_close(f_x.sum(-1)[inside_x], torch.ones(int(inside_x.sum())))
    inside_y = (filter_centres(p.g_y, p.delta, size) - (height + 1) / 2).abs() < height / 2
    torch.testing.assert_close(f_y.sum(-1)[inside_y], torch.ones(int(inside_y.sum())))


def test_filter_far_outside_the_image_reads_nothing_without_nan():
    p = _params(2, g_x=-500.0, g_y=-500.0, delta=1.0, sigma2=0.5)
    f_x, f_y = filterbanks(p, 10, 10, 3)
    assert torch.isfinite(f_x).all() and f_x.sum() < 1e-6


def _filterbank_eqs_25_26(centres, sigma2, length):
    """Eqs. 25–26 written out with no floor on the weights (the reference for the fast one)."""
    a = torch.arange(1, length + 1, dtype=centres.dtype)
    f = torch.exp(-((a - centres.unsqueeze(-1)) ** 2) / (2 * sigma2[:, None, None]))
    return f / f.sum(-1, keepdim=True).clamp_min(1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_floored_filterbank_equals_eqs_25_26_for_filters_on_the_image(dtype):
    torch.manual_seed(0)
    centres = torch.rand(64, 5, dtype=dtype) * 27 + 1  # every centre on the 28-pixel axis
    sigma2 = torch.rand(64, dtype=dtype) * 20 + 0.05
    fast, exact = filterbank(centres, sigma2, 28), _filterbank_eqs_25_26(centres, sigma2, 28)
    assert (fast - exact).abs().max() < 1e-12
    # The gradient too: the floored weights carried gradients of < 1e-10 (float64).
    if dtype is torch.float64:
        c = centres.clone().requires_grad_()
        (g_fast,) = torch.autograd.grad((filterbank(c, sigma2, 28) ** 2).sum(), c)
        (g_exact,) = torch.autograd.grad((_filterbank_eqs_25_26(c, sigma2, 28) ** 2).sum(), c)
        assert (g_fast - g_exact).abs().max() < 1e-10


def test_filterbank_backward_equals_autograd_through_the_floored_formula():
    # The hand-written backward of generative.attention._Filterbank, against autograd through
    # the same floored formula, on centres on, near and far off the image (rows with Z floored).
    from generative.attention import _LOG_FLOOR, FILTER_EPS, FILTER_FLOOR

    def autograd_filterbank(centres, sigma2, length):
        a = torch.arange(1, length + 1, dtype=centres.dtype)
        u = -((a - centres.unsqueeze(-1)) ** 2) / (2 * sigma2[:, None, None])
        f = torch.nn.functional.threshold(u.clamp_min(_LOG_FLOOR).exp(), FILTER_FLOOR, 0.0)
        return f / f.sum(-1, keepdim=True).clamp_min(FILTER_EPS)

    torch.manual_seed(2)
    centres = (torch.rand(40, 3, dtype=torch.float64) * 60 - 16).requires_grad_()
    sigma2 = (torch.rand(40, dtype=torch.float64) * 8 + 0.3).requires_grad_()
    weights = torch.randn(40, 3, 28, dtype=torch.float64)
    fast = filterbank(centres, sigma2, 28)
    slow = autograd_filterbank(centres, sigma2, 28)
    assert (fast - slow).abs().max() < 1e-15
    fast_grads = torch.autograd.grad((fast * weights).sum(), (centres, sigma2))
    slow_grads = torch.autograd.grad((slow * weights).sum(), (centres, sigma2))
    for g_fast, g_slow in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    # And against finite differences, on centres on a 12-pixel axis (where the floor is smooth).
    on_axis = (torch.rand(6, 2, dtype=torch.float64) * 11 + 1).requires_grad_()
    wide = (torch.rand(6, dtype=torch.float64) * 4 + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, s: filterbank(c, s, 12), (on_axis, wide))


def test_filterbank_has_no_subnormal_weights():
    # Narrow filters and centres off the image: the plain formula yields float32 subnormals,
    # which slow every product they enter; the floored filterbank yields exact zeros instead.
    centres = torch.linspace(-20, 48, 400).view(80, 5)
    sigma2 = torch.full((80,), 3.0)
    tiny = torch.finfo(torch.float32).tiny
    exact = _filterbank_eqs_25_26(centres, sigma2, 28)
    assert ((exact > 0) & (exact < tiny)).any()  # the case is real
    fast = filterbank(centres, sigma2, 28)
    assert not ((fast > 0) & (fast < tiny)).any()


def test_identity_window_reads_and_writes_the_image_unchanged():
    # N = A = B, δ = 1, tiny σ, γ = 1: F_X = F_Y = I, so read and write are identities.
    torch.manual_seed(0)
    side = 7
    p = _params(3, g_x=(side + 1) / 2, g_y=(side + 1) / 2, delta=1.0, sigma2=1e-3)
    f_x, f_y = filterbanks(p, side, side, side)
    torch.testing.assert_close(f_x, torch.eye(side, dtype=torch.float64).expand(3, -1, -1))
    image = torch.rand(3, 2, side, side, dtype=torch.float64)
    torch.testing.assert_close(read_patch(image, f_x, f_y, p.gamma), image)
    torch.testing.assert_close(write_patch(image, f_x, f_y, p.gamma), image)


def test_read_orientation_rows_are_vertical():
    # A bright row of the image must appear as a bright row of an identity patch.
    side = 5
    p = _params(1, g_x=3, g_y=3, delta=1.0, sigma2=1e-3)
    f_x, f_y = filterbanks(p, side, side, side)
    image = torch.zeros(1, 1, side, side, dtype=torch.float64)
    image[0, 0, 1, :] = 1.0
    patch = read_patch(image, f_x, f_y, p.gamma)
    assert patch[0, 0, 1].sum() == pytest.approx(side) and patch[0, 0, 0].sum() < 1e-12


def test_intensity_scales_read_and_inverts_on_write():
    side = 6
    torch.manual_seed(1)
    p = _params(1, g_x=3.5, g_y=3.5, delta=1.0, sigma2=0.7, gamma=2.5)
    f_x, f_y = filterbanks(p, side, side, 4)
    image = torch.rand(1, 1, side, side, dtype=torch.float64)
    patch = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    ones = torch.ones(1, dtype=torch.float64)
    torch.testing.assert_close(
        read_patch(image, f_x, f_y, p.gamma), 2.5 * read_patch(image, f_x, f_y, ones)
    )
    torch.testing.assert_close(
        write_patch(patch, f_x, f_y, p.gamma), write_patch(patch, f_x, f_y, ones) / 2.5
    )


@pytest.mark.parametrize("channels,height,width", [(1, 28, 28), (3, 32, 32), (3, 20, 31)])
def test_read_write_shapes_grey_and_colour(channels, height, width):
    torch.manual_seed(0)
    reader = AttentiveRead(16, channels, height, width, size=5)
    writer = AttentiveWrite(16, channels, height, width, size=4)
    h = torch.randn(6, 16)
    x = torch.rand(6, channels, height, width)
    r = reader(x, x - 0.5, h)
    assert r.shape == (6, 2 * channels * 25)
    canvas, window = writer(h)
    assert canvas.shape == (6, channels, height, width)
    assert window.box(4).shape == (6, 4)


def test_colour_channels_share_the_same_filters():
    torch.manual_seed(0)
    reader = AttentiveRead(8, 3, 12, 12, size=3)
    h, x = torch.randn(2, 8), torch.rand(2, 3, 12, 12)
    params = reader.window(h)
    f_x, f_y = filterbanks(params, 12, 12, 3)
    full = read_patch(x, f_x, f_y, params.gamma)
    for ch in range(3):
        torch.testing.assert_close(
            full[:, ch : ch + 1], read_patch(x[:, ch : ch + 1], f_x, f_y, params.gamma)
        )


def test_gradcheck_read_and_write_wrt_attention_parameters():
    torch.manual_seed(0)
    height, width, size = 6, 5, 3
    image = torch.rand(2, 1, height, width, dtype=torch.float64)
    patch = torch.rand(2, 1, size, size, dtype=torch.float64)

    def read(raw):
        p = attention_params(raw, height, width, size)
        f_x, f_y = filterbanks(p, height, width, size)
        return read_patch(image, f_x, f_y, p.gamma)

    def write(raw):
        p = attention_params(raw, height, width, size)
        f_x, f_y = filterbanks(p, height, width, size)
        return write_patch(patch, f_x, f_y, p.gamma)

    raw = (0.2 * torch.randn(2, 5, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(read, (raw,))
    assert torch.autograd.gradcheck(write, (raw,))


def test_box_runs_through_the_outer_filter_centres():
    p = _params(1, g_x=10.0, g_y=5.0, delta=2.0, sigma2=1.0)
    box = p.box(4)[0]  # centres at g ± 3 (1-based) -> subtract 1 for 0-based pixels
    torch.testing.assert_close(box, torch.tensor([6.0, 1.0, 12.0, 7.0], dtype=torch.float64))


def test_start_window_puts_a_2x2_read_on_the_digit(real_data_dir):
    """The optional read start (not in the paper): filters 8 px apart around the centre with
    σ = 4 px. The paper's init (bias ≈ 0) puts them at pixels 1 and 28, where MNIST has no ink."""
    from generative.draw import DrawModel, draw_config
    from guides.draw import DrawGuide
    from tasks.data import load_images

    torch.manual_seed(0)
    guide = DrawGuide(DrawModel(draw_config("mnist_read_start")))
    reader = guide.reader
    p = reader.window(torch.zeros(1, 256))
    mu = filter_centres(p.g_x, p.delta, 2)[0]
    torch.testing.assert_close(mu, torch.tensor([10.5, 18.5]))
    assert p.sigma2.item() == pytest.approx(16.0) and p.gamma.item() == pytest.approx(1.0)
    x = load_images("mnist", "train", data_dir=real_data_dir, num_examples=500).images
    started = reader(x, x, torch.zeros(len(x), 256))
    paper = AttentiveRead(256, 1, 28, 28, 2)
    with torch.no_grad():
        paper.linear.bias.zero_()
    default = paper(x, x, torch.zeros(len(x), 256))
    assert (started.amax(1) > 0.05).float().mean() > 0.95  # ink in almost every image
    assert (default.amax(1) > 0.05).float().mean() < 0.05
    with pytest.raises(ValueError, match="stride"):
        AttentiveRead(256, 1, 28, 28, 2, start_stride=0.0)
