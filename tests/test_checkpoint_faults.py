"""Faulty checkpoint files: each gives one CheckpointError in our words, naming the file and
saying what it is and is not; the file is never changed; a device problem is a device problem."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generative.draw import DrawConfig, DrawModel
from guides.draw import DrawGuide
from inference.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from inference.trainer import SVITrainer, TrainConfig
from tasks.data.batches import ImageBatches
from tasks.families import load_trained

TINY = DrawConfig(
    height=8,
    width=8,
    steps=2,
    encoder_size=8,
    decoder_size=8,
    z_size=2,
    read_size=2,
    write_size=2,
)
#: PyTorch's own wording, which must never reach the user.
TORCH_WORDS = re.compile(r"weights_only|set it to False|file an issue|PytorchStreamReader|miniz")


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint written by the trainer for a tiny DRAW (two steps)."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = DrawModel(TINY)
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    trainer = SVITrainer(
        model,
        DrawGuide(model),
        ImageBatches(images, 8, seed=1, dynamic_binarization=True),
        TrainConfig(steps=2, batch_size=8, lr=1e-2, seed=2, checkpoint_every=2),
        out_dir=out,
        checkpoint_extra={"model": "draw", "model_config": TINY.to_dict()},
        progress=False,
    )
    trainer.fit()
    return out / "checkpoint.pt"


def _flip(data: bytes, start: int, count: int = 16) -> bytes:
    out = bytearray(data)
    for i in range(start, start + count):
        out[i] ^= 0xFF
    return bytes(out)


def _torch_bytes(obj: object, tmp: Path, **kwargs: object) -> bytes:
    torch.save(obj, tmp, **kwargs)
    return tmp.read_bytes()


def _zip_bytes(tmp: Path) -> bytes:
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return tmp.read_bytes()


def _ours(**fields: object) -> dict:
    base = {"format": FORMAT, "format_version": 1, "model": "draw", "model_config": {}}
    return {**base, "model_state": {}, "guide_state": {}, "step": 0, **fields}


#: name → (bad file's bytes from the good bytes and a scratch path, expected message)
FAULTS: dict[str, tuple[Callable[[bytes, Path], bytes], str]] = {
    "truncated_half": (lambda b, _: b[: len(b) // 2], "is truncated or corrupted .*zip archive"),
    "truncated_end": (lambda b, _: b[:-30], "is truncated or corrupted .*cut short"),
    "truncated_head": (lambda b, _: b[:10], "is truncated or corrupted"),
    "bit_flipped": (lambda b, _: _flip(b, len(b) // 2), "is truncated or corrupted .*CRC-32"),
    "header_flipped": (lambda b, _: _flip(b, 40, 40), "is truncated or corrupted"),
    "random_bytes": (
        lambda b, _: bytes(range(7, 250)) * 4,
        r"is not a PyTorch checkpoint \(its first bytes are not a zip archive",
    ),
    "text": (lambda b, _: b"step: 3\nmodel: draw\n", r"is a text file .*not a PyTorch checkpoint"),
    "empty": (lambda b, _: b"", r"is empty \(0 bytes\), not a pyro-draw checkpoint"),
    "plain_pickle": (lambda b, _: pickle.dumps({"model": "draw"}), "is a pickle"),
    "legacy_torch": (
        lambda b, p: _torch_bytes(_ours(), p, _use_new_zipfile_serialization=False),
        "legacy",
    ),
    "other_zip": (lambda b, p: _zip_bytes(p), "is a zip archive but not a PyTorch checkpoint"),
    "tensor": (lambda b, p: _torch_bytes(torch.zeros(3), p), "holds a Tensor, not a pyro-draw"),
    "other_model": (
        lambda b, p: _torch_bytes({"state_dict": {"w": torch.zeros(2)}}, p),
        "not a pyro-draw checkpoint: it holds no 'format' field",
    ),
    "unsafe_object": (
        lambda b, p: _torch_bytes({"path": Path("x")}, p),
        r"holds a pickled pathlib\.\w+ object, which a safe \(weights-only\) load does not read",
    ),
    "no_model_field": (
        lambda b, p: _torch_bytes({k: v for k, v in _ours().items() if k != "model"}, p),
        "holds no 'model' field: not written by pyro-draw train",
    ),
    "newer_version": (
        lambda b, p: _torch_bytes(_ours(format_version=2), p),
        "format version 2; this pyro-draw reads version 1",
    ),
    "step_not_int": (
        lambda b, p: _torch_bytes(_ours(step="3"), p),
        "field 'step' should be a int, found str",
    ),
}


def _assert_ours(exc: pytest.ExceptionInfo, path: Path, pattern: str) -> None:
    message = str(exc.value)
    assert str(path) in message, message
    assert re.search(pattern, message), message
    assert not TORCH_WORDS.search(message), message
    assert exc.value.__cause__ is None or isinstance(exc.value.__cause__, CheckpointError)


def test_the_real_checkpoint_loads(real_checkpoint: Path) -> None:
    model, _, checkpoint = load_trained(real_checkpoint)
    assert checkpoint.step == 2 and checkpoint.model == "draw"
    assert isinstance(model, DrawModel)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_checkpoint_gives_one_clear_error(
    fault: str, real_checkpoint: Path, tmp_path: Path
) -> None:
    make, pattern = FAULTS[fault]
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(make(real_checkpoint.read_bytes(), tmp_path / "scratch.pt"))
    before = bad.read_bytes(), bad.stat().st_mtime_ns
    for read in (load_checkpoint, read_checkpoint, load_trained):
        with pytest.raises(CheckpointError) as exc:
            read(bad)
        _assert_ours(exc, bad, pattern)
    assert (bad.read_bytes(), bad.stat().st_mtime_ns) == before


def test_a_directory_or_a_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint.pt"
    folder.mkdir()
    with pytest.raises(CheckpointError) as exc:
        load_trained(folder)
    _assert_ours(exc, folder, "is a directory, expected a checkpoint file")
    with pytest.raises(CheckpointError) as exc:
        load_trained(tmp_path / "nowhere.pt")
    _assert_ours(exc, tmp_path / "nowhere.pt", "does not exist")


def test_an_unreadable_file_says_why_in_words(real_checkpoint: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(real_checkpoint.read_bytes())
    bad.chmod(0)
    try:
        with pytest.raises(CheckpointError) as exc:
            load_checkpoint(bad)
        _assert_ours(exc, bad, r"cannot be opened \(Permission denied\)")
    finally:
        bad.chmod(0o644)


def test_a_state_of_another_model_is_named(real_checkpoint: Path, tmp_path: Path) -> None:
    payload = load_checkpoint(real_checkpoint)
    other = DrawModel(DrawConfig(**{**TINY.to_dict(), "z_size": 3}))
    path = save_checkpoint({**payload, "model_state": other.state_dict()}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as exc:
        load_trained(path)
    _assert_ours(exc, path, r"model_state does not fit .*shapes .*from another model")
    path = save_checkpoint({**payload, "model_config": {"z_sizes": 3}}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError) as exc:
        load_trained(path)
    _assert_ours(exc, path, "its model_config does not build a 'draw' model")
    path = save_checkpoint({**payload, "model": "mystery"}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError) as exc:
        load_trained(path)
    _assert_ours(exc, path, "unknown model 'mystery'")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_cut_or_flip_is_an_error_or_the_same_checkpoint(
    data: st.DataObject, real_checkpoint: Path, tmp_path: Path
) -> None:
    """A flip that lands in padding or a timestamp is harmless; everything else is an error."""
    good = real_checkpoint.read_bytes()
    if data.draw(st.booleans(), label="cut"):
        bad = good[: data.draw(st.integers(0, len(good) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(good) - 1), label="at")
        bad = _flip(good, at, min(data.draw(st.integers(1, 8), label="count"), len(good) - at))
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(bad)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc) and not TORCH_WORDS.search(str(exc))
        return
    original = load_checkpoint(real_checkpoint)
    assert loaded["step"] == original["step"]
    for state in ("model_state", "guide_state"):
        for key, value in original[state].items():
            assert torch.equal(loaded[state][key], value), key


# ------------------------------------------------------------------------------------ device
@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_on_a_cpu_machine_blames_the_device_not_the_file(
    real_checkpoint: Path, tmp_path: Path, cpu_only: None
) -> None:
    for path in (real_checkpoint, tmp_path / "never-read.pt"):
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine"):
            load_trained(path, device="cuda")
        with pytest.raises(ValueError, match="was not read") as exc:
            read_checkpoint(path, map_location="cuda")
        assert not isinstance(exc.value, CheckpointError)
    assert read_checkpoint(real_checkpoint, map_location="cpu").step == 2


def test_cli_cuda_on_a_cpu_machine(real_checkpoint: Path, cpu_only: None, capsys) -> None:
    from tasks.cli import main

    with pytest.raises(SystemExit) as exc:  # refused while the command line is read
        main(["evaluate", str(real_checkpoint), "--device", "cuda", "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--device" in err and "CUDA is not available" in err
    assert "corrupt" not in err and "not a pyro-draw" not in err
