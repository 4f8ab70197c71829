"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``: gloo on CPU, NCCL
on CUDA), so that a run on ``N`` processes follows the single-process trajectory.

Three pieces make the trajectory independent of the world size:

* **Shards.** :class:`ShardedBatches` gives rank ``r`` its contiguous ``B/N`` slice of every
  global batch of the deterministic batch source, so the ranks together see the single-process
  batch.
* **Gradients.** :func:`average_gradients` all-reduces the gradients of the trainer's parameter
  list (model, guide and the objective's own parameters, e.g. learned NVIL baselines) before
  clipping and the optimiser step, in one flat buffer. We chose an explicit all-reduce over
  ``DistributedDataParallel``: DDP hooks a single module's ``forward``, but our objectives call
  ``model.model`` and ``guide.guide`` through Pyro's ``poutine`` traces (several times per step
  for the enumerated count), and objectives own parameters and buffers outside both modules;
  one all-reduce of everything after ``backward`` is simple, covers them all, and is what DDP
  computes (the mean of the per-rank gradients of the per-rank batch means).
* **Noise.** :class:`ShardNoise` draws the random numbers of every sample site inside a data
  plate (``"data"``, ``"games"``) for the *global* batch from a generator seeded by
  ``(seed, step)`` and keeps this rank's rows, so example ``i`` gets the same noise at step
  ``s`` whatever ``N`` is. Objectives with batch statistics reduce them with :func:`global_sum`
  (the KL floor of sketch-rnn, NVIL's running moments). Randomness outside sample sites
  (dropout) is not covered and differs between world sizes.

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is the identity.
"""

from __future__ import annotations

import atexit
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyro.distributions as dist
import torch
import torch.distributed as tdist
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor

__all__ = [
    "DATA_PLATES",
    "any_rank",
    "ShardNoise",
    "ShardedBatches",
    "World",
    "average_gradients",
    "broadcast_parameters",
    "global_sum",
    "init_world",
    "leave_world",
    "reduce_floats",
    "world",
]

#: names of the plates over the examples of a batch (the dimension that is sharded)
DATA_PLATES: tuple[str, ...] = ("data", "games")


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` processes (1 of 1 alone)."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_WORLD = World()


def world() -> World:
    """The current :class:`World` (set by :func:`init_world`)."""
    return _WORLD


def init_world(device: str | torch.device = "cpu") -> World:
    """Join the process group ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``): gloo for CPU, NCCL for CUDA. Without
    ``WORLD_SIZE`` (or with 1) nothing is started and the world is one process."""
    global _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        _WORLD = World()
        return _WORLD
    if not tdist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        tdist.init_process_group(backend)
        # leave the group before the interpreter exits: a gloo group torn down by the exit
        # itself can abort a rank ("terminate called without an active exception")
        atexit.register(_leave_world)
    _WORLD = World(rank=tdist.get_rank(), size=tdist.get_world_size())
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return _WORLD


def _leave_world() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def leave_world() -> None:
    """Wait for every rank, then leave the process group (the end of a command that succeeded).

    Rank 0 still writes, reports and draws after the others are done; a rank that tears its
    gloo group down while a peer is still connected can abort at exit ("terminate called
    without an active exception", seen once in CI), so every rank leaves only after the last
    one is finished. Failed commands skip the barrier (a peer may be gone); ``atexit`` then
    destroys the group alone."""
    if tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def set_world(value: World) -> None:
    """Set the world directly (tests that start their own process group)."""
    global _WORLD
    _WORLD = value


# ------------------------------------------------------------------------------ collectives
def global_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over the ranks (detached; ``tensor`` itself alone)."""
    value = tensor.detach().clone()
    if _WORLD.distributed:
        tdist.all_reduce(value)
    return value


def reduce_floats(values: dict[str, float]) -> dict[str, float]:
    """The mean over the ranks of each float (metrics to log); keys must agree."""
    if not _WORLD.distributed or not values:
        return values
    keys = sorted(values)
    flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    tdist.all_reduce(flat)
    return {k: v / _WORLD.size for k, v in zip(keys, flat.tolist(), strict=True)}


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Whether each flag holds on any rank, in one all-reduce (stop signals, time budgets,
    non-finite losses: every rank must decide alike, or the next collective waits for ever)."""
    if not _WORLD.distributed:
        return tuple(bool(f) for f in flags)
    value = torch.tensor([1.0 if f else 0.0 for f in flags])
    tdist.all_reduce(value, op=tdist.ReduceOp.MAX)
    return tuple(bool(v) for v in value.tolist())


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the ranks, in one flat all-reduce (a parameter
    without a gradient on this rank counts as zero, so every rank reduces the same buffer)."""
    if not _WORLD.distributed or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= _WORLD.size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(tensors: Sequence[Tensor]) -> None:
    """Copy rank 0's values of ``tensors`` (parameters, buffers) to every rank."""
    if not _WORLD.distributed:
        return
    for t in tensors:
        tdist.broadcast(t.data, src=0)


# ------------------------------------------------------------------------------ batches
class ShardedBatches:
    """Rank ``r``'s contiguous ``batch_size / N`` rows of every batch of ``source`` (each
    tensor of a batch is sliced along dim 0); ``batch_size`` stays the global one."""

    def __init__(self, source: Any, world_: World):
        if source.batch_size % world_.size:
            raise ValueError(
                f"--batch-size {source.batch_size} is not divisible by the {world_.size} "
                "processes: each takes an equal share of the global batch"
            )
        self.source, self.world = source, world_
        self.batch_size = source.batch_size
        self.local = source.batch_size // world_.size

    def __getattr__(self, name: str) -> Any:  # the source's other attributes (epoch, …)
        return getattr(self.__dict__["source"], name)

    def batch(self, step: int) -> tuple[Tensor, ...]:
        start = self.world.rank * self.local
        return tuple(t[start : start + self.local] for t in self.source.batch(step))


# ------------------------------------------------------------------------------ noise
def _leaf(fn: Any) -> Any:
    while isinstance(fn, (dist.Independent, MaskedDistribution, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return fn


class ShardNoise(Messenger):
    """Draw every unobserved sample site's random numbers for the global batch and keep this
    rank's rows (module docstring): inside a data plate of local size ``b`` at batch dim ``d``
    the noise has ``N·b`` rows there, and rows ``r·b … (r+1)·b − 1`` are used. Sites outside
    data plates draw their whole shape, alike on every rank.

    Supported leaf distributions (under ``Independent``, masks and expansions): Normal (and
    :class:`generative.distributions.ScoreNormal`), Uniform (and ``ScoreUniform``), Bernoulli,
    :class:`generative.distributions.AbsorbingBernoulli`, Categorical and Delta; another raises
    ``NotImplementedError`` naming the site. Enumerated, replayed and observed sites are left
    to Pyro.
    """

    def __init__(self, generator: torch.Generator, world_: World | None = None):
        super().__init__()
        self.generator, self.world = generator, world_ or _WORLD

    def _pyro_sample(self, msg: dict) -> None:
        fn = msg["fn"]
        if msg["is_observed"] or msg["value"] is not None or isinstance(fn, _Subsample):
            return
        if msg["infer"].get("enumerate"):
            return
        frames = [f for f in msg["cond_indep_stack"] if f.name in DATA_PLATES]
        dim = frames[0].dim if frames else None
        msg["value"] = self.sample(msg["name"], fn, dim)

    def _noise(self, shape: torch.Size, dim: int | None, kind: str, like: Tensor) -> Tensor:
        shape = list(shape)
        if dim is not None:
            shape[dim] *= self.world.size
        draw = torch.randn if kind == "normal" else torch.rand
        noise = draw(shape, generator=self.generator, dtype=like.dtype, device=like.device)
        if dim is None or self.world.size == 1:
            return noise
        local = shape[dim] // self.world.size
        return noise.narrow(dim, self.world.rank * local, local)

    def sample(self, name: str, fn: Any, dim: int | None) -> Tensor:
        """The value of site ``name`` with distribution ``fn`` (``dim``: the data plate's batch
        dim, negative, or ``None``)."""
        leaf = _leaf(fn)
        shape = fn.shape()  # batch + event
        at = None if dim is None else dim - len(fn.event_shape)  # dim within ``shape``
        if isinstance(leaf, dist.Delta):
            return fn.mean
        if isinstance(leaf, dist.Normal):
            value = fn.mean + fn.stddev * self._noise(shape, at, "normal", fn.mean)
        elif isinstance(leaf, dist.Uniform):
            u = self._noise(shape, at, "uniform", fn.mean)
            value = fn.mean + math.sqrt(3.0) * fn.stddev * (2 * u - 1)
        elif isinstance(leaf, dist.Bernoulli) or type(leaf).__name__ == "AbsorbingBernoulli":
            probs = fn.mean
            value = (self._noise(shape, at, "uniform", probs) < probs).to(probs.dtype)
        elif isinstance(leaf, dist.Categorical):
            probs = leaf.probs.expand(*fn.batch_shape, leaf.probs.shape[-1])
            u = self._noise(fn.batch_shape, at, "uniform", probs)
            cdf = probs.cumsum(-1)
            value = torch.searchsorted(cdf.detach(), u.unsqueeze(-1)).squeeze(-1)
            value = value.clamp_max(probs.shape[-1] - 1)
        else:
            raise NotImplementedError(
                f"site {name!r}: no shard-invariant sampler for {type(leaf).__name__} "
                "(distributed training supports Normal, Uniform, Bernoulli, Categorical, Delta)"
            )
        return value if fn.has_rsample else value.detach()


def step_generator(seed: int, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of :class:`ShardNoise` at ``step``, alike on every rank."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + step * 7_919 + 17) % (2**63))
    return generator


@contextmanager
def shard_noise(seed: int, step: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """``with shard_noise(seed, step):`` — :class:`ShardNoise` for one training step."""
    with ShardNoise(step_generator(seed, step, device)):
        yield
