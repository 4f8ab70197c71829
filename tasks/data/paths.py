"""Where dataset files live, checksum verification and (opt-in) downloads.

Resolution order of the data directory (:func:`resolve_data_dir`):

1. the explicit ``data_dir`` argument (CLI ``--data-dir``);
2. the environment variable ``PYRO_DRAW_DATA_DIR``;
3. the first existing of ``<cwd>/../shared/data`` and ``<source checkout>/../shared/data``;
4. ``~/.cache/pyro-draw``.

Files are looked up in the canonical layout ``<data_dir>/<subdir>/<filename>`` (e.g.
``mnist/train-images-idx3-ubyte.gz``), so official downloads and the shared copies are
interchangeable. Nothing is ever downloaded unless ``download=True``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .core import DataError

__all__ = [
    "DATA_DIR_ENV",
    "DataDir",
    "FileSpec",
    "data_dir_candidates",
    "file_sha256",
    "find",
    "locate",
    "resolve_data_dir",
]

DATA_DIR_ENV = "PYRO_DRAW_DATA_DIR"
_HASH_CHUNK = 1 << 20

DataDir = str | os.PathLike[str] | None


@dataclass(frozen=True)
class FileSpec:
    """A canonical dataset file: ``<data_dir>/<subdir>/<filename>`` with a known sha256.

    ``url`` is the official download location (``None`` when the file is a derived artefact that
    cannot be downloaded); ``mirrors`` are tried after it, in order.
    """

    subdir: str
    filename: str
    sha256: str
    url: str | None
    mirrors: tuple[str, ...] = ()

    def path_in(self, data_dir: Path) -> Path:
        """Canonical location of this file under ``data_dir``."""
        return Path(data_dir) / self.subdir / self.filename


def data_dir_candidates() -> list[Path]:
    """Shared-data directories tried (in order) when neither argument nor env var is given."""
    root = Path(__file__).resolve().parents[2]
    return [Path.cwd() / ".." / "shared" / "data", root / ".." / "shared" / "data"]


def resolve_data_dir(data_dir: DataDir = None) -> Path:
    """Data directory: argument > ``$PYRO_DRAW_DATA_DIR`` > shared data > ``~/.cache/pyro-draw``."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    for candidate in data_dir_candidates():
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.home() / ".cache" / "pyro-draw").resolve()


# (resolved path, size, mtime_ns) -> sha256 of files already hashed in this process.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, cached in-process on ``(path, size, mtime)``."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def _verify(spec: FileSpec, path: Path) -> Path:
    found = file_sha256(path)
    if found != spec.sha256:
        raise DataError(
            f"{path}: checksum mismatch for {spec.subdir}/{spec.filename}: expected sha256 "
            f"{spec.sha256}, found {found}. The file is corrupt, truncated or a different "
            f"version; delete it and re-run with download=True (CLI: --download), or replace "
            f"it with the official file from {spec.url or 'its documented source'}."
        )
    return path


def find(spec: FileSpec, data_dir: DataDir = None) -> Path | None:
    """Verified path of ``spec`` under the data directory, or ``None`` if it is absent.

    Raises :class:`DataError` if the file exists but its sha256 is wrong.
    """
    path = spec.path_in(resolve_data_dir(data_dir))
    if not path.is_file():
        return None
    return _verify(spec, path)


def _dir_origin(data_dir: DataDir) -> str:
    if data_dir is not None:
        return "the data_dir argument (CLI: --data-dir)"
    if os.environ.get(DATA_DIR_ENV):
        return f"${DATA_DIR_ENV}"
    searched = ", ".join(str(p.resolve()) for p in data_dir_candidates())
    return f"the default search ({searched}, then ~/.cache/pyro-draw)"


def _missing_message(spec: FileSpec, root: Path, data_dir: DataDir) -> str:
    lines = [
        f"dataset file {spec.filename!r} not found.",
        f"  searched: {spec.path_in(root)}",
        f"  data directory {root} came from {_dir_origin(data_dir)}",
    ]
    if spec.url:
        lines.append(f"  official URL: {spec.url}")
        lines.append(
            "  pass download=True (CLI: --download) to fetch it, or set data_dir / "
            f"${DATA_DIR_ENV} to a directory containing {spec.subdir}/{spec.filename}."
        )
    else:
        lines.append(
            f"  this file has no download URL; set data_dir / ${DATA_DIR_ENV} to a directory "
            f"containing {spec.subdir}/{spec.filename}."
        )
    return "\n".join(lines)


def _download(spec: FileSpec, target: Path) -> Path:
    urls = [u for u in (spec.url, *spec.mirrors) if u]
    if not urls:
        raise DataError(f"{spec.subdir}/{spec.filename} has no download URL; cannot download.")
    errors: list[str] = []
    for url in urls:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{spec.filename}.", suffix=".part", dir=target.parent
            )
        except OSError as exc:
            raise DataError(
                f"cannot write {spec.filename} into {target.parent} ({exc}); pass a writable "
                f"data_dir (CLI: --data-dir) or set ${DATA_DIR_ENV}"
            ) from exc
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := resp.read(_HASH_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            found = digest.hexdigest()
            if found != spec.sha256:
                tmp.unlink(missing_ok=True)
                raise DataError(
                    f"download of {url} to {target}: checksum mismatch, expected sha256 "
                    f"{spec.sha256}, found {found}; the downloaded file was deleted."
                )
            os.replace(tmp, target)
            return _verify(spec, target)
        except DataError:
            tmp.unlink(missing_ok=True)
            raise
        except (OSError, ValueError) as exc:  # URLError is an OSError
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {exc}")
    raise DataError(
        f"could not download {spec.subdir}/{spec.filename} to {target}:\n  " + "\n  ".join(errors)
    )


def locate(spec: FileSpec, data_dir: DataDir = None, download: bool = False) -> Path:
    """Verified path of ``spec``; downloads it first if missing and ``download`` is true.

    Downloads go to a temporary file next to the target, are checked against ``spec.sha256`` and
    moved into place atomically with :func:`os.replace`.
    """
    root = resolve_data_dir(data_dir)
    found = find(spec, root)
    if found is not None:
        return found
    if not download:
        raise DataError(_missing_message(spec, root, data_dir))
    return _download(spec, spec.path_in(root))
