"""RAM's retina, glimpse network and location policy (Mnih et al. 2014, sections 3–4).

Location convention. A location ``l = (l_x, l_y) ∈ [-1, 1]²`` has ``l_x`` horizontal (image
columns) and ``l_y`` vertical (rows); ``(0, 0)`` is the image centre and ``(-1, -1)`` its top-left
corner (sec. 4), taken literally as the *outer corner of the image* — the convention of
``grid_sample(align_corners=False)``. In 0-based pixel-centre coordinates (pixel ``j`` covers
``[j - ½, j + ½]``) the glimpse is centred at

    c_x = W/2 · (1 + l_x) − ½,    c_y = H/2 · (1 + l_y) − ½,

so ``l_x = −1`` is the left edge of column 0, ``l_x = +1`` the right edge of column ``W − 1``, and
``l = 0`` lies between the two middle pixels of an even-sized image. Both corners are treated
alike: an even-sized patch at ``l = ±1`` is exactly half outside the image.

A ``w × w`` patch (``w = size · 2^k`` at scale ``k``) is the block of whole pixels whose centre is
nearest to ``(c_x, c_y)``: its first row is ``⌊c_y − (w − 1)/2 + ½⌋`` and its first column
``⌊c_x − (w − 1)/2 + ½⌋``. Ties (``c − (w − 1)/2`` a half-integer: for even ``w`` never at
``l ∈ {−1, 0, 1}`` on an even-sided image, for odd ``w`` exactly there) round towards the
bottom-right. Every scale is
centred on the previous one (exactly, except between the first two when ``size`` is odd) and is
downsampled by averaging non-overlapping ``2^k × 2^k`` blocks (area interpolation, exact since
``w`` is a multiple of ``2^k``). Pixels outside the image read as zero.

The sensor is differentiable with respect to the image but not the location (the patch grid is
integer): as in the paper, the location policy is trained with REINFORCE.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LOCATION_STD",
    "GlimpseNetwork",
    "LocationNetwork",
    "clip_locations",
    "glimpse_centres",
    "glimpse_origins",
    "glimpse_sensor",
    "location_distribution",
]

# The paper selects the policy's standard deviation by random search without reporting it
# (sec. 4.1); 0.11 is the default of the Torch `rnn` package's RAM reproduction.
DEFAULT_LOCATION_STD = 0.11


def _check_locations(locations: Tensor, batch: int | None = None) -> None:
    if locations.dim() != 2 or locations.shape[1] != 2:
        raise ValueError(
            f"locations: expected shape (B, 2) = (l_x, l_y), found {tuple(locations.shape)}"
        )
    if batch is not None and locations.shape[0] != batch:
        raise ValueError(
            f"locations: expected {batch} locations (one per image), found {locations.shape[0]}"
        )
    if not locations.is_floating_point():
        raise ValueError(f"locations: expected a floating-point tensor, found {locations.dtype}")
    if not torch.isfinite(locations).all():
        raise ValueError("locations: expected finite values, found NaN or inf")


def _check_retina(size: int, scales: int) -> None:
    if size < 1:
        raise ValueError(f"glimpse size: expected an integer >= 1, found {size}")
    if scales < 1:
        raise ValueError(f"glimpse scales: expected an integer >= 1, found {scales}")


def clip_locations(locations: Tensor) -> Tensor:
    """Clamp locations to the image square ``[-1, 1]²`` (the paper's location range, sec. 4)."""
    return locations.clamp(-1.0, 1.0)


def glimpse_centres(locations: Tensor, height: int, width: int) -> Tensor:
    """Sec. 4, "Retina and location encodings": ``(B, 2)`` locations → ``(B, 2)`` glimpse centres
    ``(c_x, c_y)`` in 0-based pixel-centre coordinates, ``c = (side/2)(1 + l) − ½`` per axis."""
    _check_locations(locations)
    loc = locations.detach().to(torch.float64)
    sides = torch.tensor([width, height], dtype=torch.float64, device=loc.device)
    return sides / 2 * (1 + loc) - 0.5


def glimpse_origins(
    locations: Tensor, height: int, width: int, *, size: int, scales: int
) -> Tensor:
    """Integer top-left pixels ``(row, column)`` of every retina patch, ``(B, scales, 2)`` int64.

    Scale ``k`` covers rows ``row … row + size·2^k − 1`` and the matching columns (see the module
    docstring for the rounding rule); useful to draw the glimpse boxes.
    """
    _check_retina(size, scales)
    centres = glimpse_centres(locations, height, width).flip(-1)  # (c_y, c_x) = (row, column)
    widths = size * 2 ** torch.arange(scales, dtype=torch.float64, device=centres.device)
    starts = torch.floor(centres[:, None, :] - (widths[None, :, None] - 1) / 2 + 0.5)
    return starts.to(torch.int64)


def glimpse_sensor(images: Tensor, locations: Tensor, *, size: int, scales: int) -> Tensor:
    """The retina ``ρ(x, l)`` (sec. 4): ``scales`` square patches centred at ``l``.

    The first patch is ``size × size`` pixels, each next one twice as wide, and every patch is
    average-pooled (area interpolation) down to ``size × size``. ``images`` is ``(B, C, H, W)``,
    ``locations`` is ``(B, 2)`` as ``(l_x, l_y)``; returns ``(B, scales, C, size, size)`` with
    zeros wherever a patch leaves the image. Locations outside ``[-1, 1]²`` are allowed (the patch
    then lies partly or wholly in the zero padding); use :func:`clip_locations` to avoid them.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images: expected a floating-point (B, C, H, W) tensor, found {images.dtype} "
            f"{tuple(images.shape)}"
        )
    batch, _, height, width = images.shape
    _check_locations(locations, batch)
    origins = glimpse_origins(locations, height, width, size=size, scales=scales).to(images.device)
    index = torch.arange(batch, device=images.device)[:, None, None]
    patches = []
    for k in range(scales):
        side = size * 2**k
        offsets = torch.arange(side, device=images.device)
        rows = origins[:, k, 0, None] + offsets  # (B, side)
        cols = origins[:, k, 1, None] + offsets
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[
            :, None, :
        ]
        # Advanced indices around a slice put the indexed dimensions first: (B, side, side, C).
        patch = images[
            index, :, rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]
        ]
        patch = (patch * inside[..., None].to(patch.dtype)).permute(0, 3, 1, 2)
        if k > 0:
            patch = F.avg_pool2d(patch, kernel_size=2**k)
        patches.append(patch)
    return torch.stack(patches, 1)


class GlimpseNetwork(nn.Module):
    """Sec. 4, "Glimpse network": ``g = Rect(Linear(h_g) + Linear(h_l))`` with
    ``h_g = Rect(Linear(ρ(x, l)))`` and ``h_l = Rect(Linear(l))``.

    Sizes default to the paper's (``h_g``, ``h_l``: 128; ``g``: 256). The location fed to both
    the sensor and ``h_l`` is used as given — clip it first (:func:`clip_locations`).
    """

    def __init__(
        self,
        channels: int,
        size: int,
        scales: int,
        *,
        glimpse_hidden: int = 128,
        location_hidden: int = 128,
        output_size: int = 256,
    ):
        super().__init__()
        _check_retina(size, scales)
        self.channels, self.size, self.scales = channels, size, scales
        self.retina_size = scales * channels * size * size
        self.output_size = output_size
        self.glimpse_in = nn.Linear(self.retina_size, glimpse_hidden)  # θ⁰_g
        self.location_in = nn.Linear(2, location_hidden)  # θ¹_g
        self.glimpse_out = nn.Linear(glimpse_hidden, output_size)  # θ²_g (acting on h_g)
        self.location_out = nn.Linear(location_hidden, output_size)  # θ²_g (acting on h_l)

    def retina(self, images: Tensor, locations: Tensor) -> Tensor:
        """``ρ(x, l)`` of shape ``(B, scales, C, size, size)``."""
        if images.shape[1] != self.channels:
            raise ValueError(
                f"images: expected {self.channels} channels, found {images.shape[1]} "
                f"(shape {tuple(images.shape)})"
            )
        return glimpse_sensor(images, locations, size=self.size, scales=self.scales)

    def forward(self, images: Tensor, locations: Tensor) -> Tensor:
        """The glimpse feature vector ``g_t = f_g(x_t, l_{t−1})``, shape ``(B, output_size)``."""
        h_g = torch.relu(self.glimpse_in(self.retina(images, locations).flatten(1)))
        h_l = torch.relu(self.location_in(locations))
        return torch.relu(self.glimpse_out(h_g) + self.location_out(h_l))


def location_distribution(mean: Tensor, std: float | Tensor) -> dist.Distribution:
    """Sec. 4, "Location network": the Gaussian policy ``N(mean, std²)`` over ``(l_x, l_y)``
    with a fixed isotropic variance, as one event of size 2."""
    if mean.dim() < 1 or mean.shape[-1] != 2:
        raise ValueError(f"location mean: expected shape (..., 2), found {tuple(mean.shape)}")
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    if not (std_t > 0).all():
        raise ValueError(f"location std: expected > 0, found {std}")
    return dist.Normal(mean, std_t.expand_as(mean)).to_event(1)


class LocationNetwork(nn.Module):
    """Sec. 4, "Location network": the mean of the location policy, ``f_l(h) = Linear(h)``.

    With ``squash=True`` (default) the mean is ``tanh(Linear(h))``: the paper's locations live in
    ``[-1, 1]²`` but its unbounded ``Linear(h)`` can drift outside, where every sample is clipped to
    the border and the reward no longer depends on the mean. ``tanh`` keeps the mean in range,
    equals ``Linear(h)`` to first order near 0 (e.g. at initialisation) and, unlike hard clipping,
    never has zero gradient, so REINFORCE can always pull a saturated mean back. ``squash=False``
    gives the paper's plain ``Linear(h)``. Either way, clip the *sampled* location
    (:func:`clip_locations`) before sensing; the policy's log-probability is that of the unclipped
    sample. The standard deviation ``std`` is fixed (not learned), as in the paper.
    """

    def __init__(self, hidden_size: int, *, std: float = DEFAULT_LOCATION_STD, squash: bool = True):
        super().__init__()
        if std <= 0:
            raise ValueError(f"location std: expected > 0, found {std}")
        self.linear = nn.Linear(hidden_size, 2)
        self.std, self.squash = float(std), squash

    def squashed(self, logits: Tensor) -> Tensor:
        """The mean from ``Linear(h)``: ``tanh`` of it with ``squash``, else itself."""
        return torch.tanh(logits) if self.squash else logits

    def forward(self, h: Tensor) -> Tensor:
        """The policy mean ``(B, 2)`` for core state ``h`` ``(B, hidden_size)``."""
        return self.squashed(self.linear(h))

    def distribution(self, h: Tensor) -> dist.Distribution:
        """``location_distribution(self(h), self.std)``."""
        return location_distribution(self(h), self.std)
