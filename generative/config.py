"""What every model configuration dataclass shares: a plain-dict round trip for checkpoints.

Checkpoints store ``config.to_dict()`` (plain Python values, loadable with ``weights_only``) and
rebuild the model from ``Config.from_dict(d)``, which names any field it does not know instead
of failing inside the constructor. :func:`named_config` looks a configuration up by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="ConfigDict")

__all__ = ["ConfigDict", "ImageConfig", "named_config"]


class ConfigDict:
    """Mixin for ``@dataclass`` configurations: :meth:`to_dict` and :meth:`from_dict`.

    ``label`` names the configuration in the unknown-field error (e.g. ``"DooD config"``).
    """

    label: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            label = f"{cls.label} " if cls.label else ""
            raise ValueError(
                f"{cls.__name__}: unknown {label}fields {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)


class ImageConfig(ConfigDict):
    """A :class:`ConfigDict` of a model of ``channels × height × width`` images."""

    channels: int
    height: int
    width: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


def named_config(configs: Mapping[str, C], family: str, name: str, overrides: dict[str, Any]) -> C:
    """``configs[name]`` with the fields ``overrides`` replaced; an unknown ``name`` raises a
    ``ValueError`` naming the ``family`` (e.g. ``"DooD"``) and the known names."""
    if name not in configs:
        raise ValueError(f"unknown {family} config {name!r}; choose one of {sorted(configs)}")
    return replace(configs[name], **overrides)
