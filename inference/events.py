"""TensorBoard events of a training run (``--tensorboard DIR``), through
``torch.utils.tensorboard``, the logger researchers already use; ``tensorboard`` is an optional
dependency (``pip install "pyro-draw[tensorboard]"``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["EventWriter", "add_pictures", "add_record", "open_event_writer"]


class EventWriter(Protocol):
    """What the trainer uses of ``torch.utils.tensorboard.SummaryWriter``."""

    def add_scalar(self, tag: str, value: float, global_step: int) -> None: ...

    def add_image(self, tag: str, img: Any, global_step: int, dataformats: str) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_event_writer(log_dir: str | Path) -> EventWriter:
    """A ``SummaryWriter`` on ``log_dir``; a clear error, before any work, when the
    ``tensorboard`` package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises ImportError without the tensorboard package
        raise ValueError(
            f"--tensorboard {log_dir}: the tensorboard package is not installed ({exc}); "
            'install it with pip install "pyro-draw[tensorboard]" or drop --tensorboard'
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


def add_record(writer: EventWriter, record: dict[str, Any]) -> None:
    """Every numeric field of a ``metrics.jsonl`` record (but ``step``) as a scalar at its step;
    validation fields (``valid_*``, ``greedy_*``) land beside the training ones."""
    step = int(record["step"])
    for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(key, float(value), step)


def add_pictures(writer: EventWriter, paths: Iterable[Path], step: int) -> None:
    """The run's PNG pictures as images (tag: the file's stem)."""
    import matplotlib.image as mpimg

    for path in paths:
        path = Path(path)
        if path.suffix.lower() != ".png":
            continue
        image = mpimg.imread(path)  # (H, W, 3|4) floats in [0, 1]
        if image.ndim == 2:
            image = image[..., None].repeat(3, -1)
        writer.add_image(path.stem, image[..., :3], step, dataformats="HWC")
    writer.flush()
