"""Omniglot one-shot classification: the run loader, the model-free baselines and the CLI."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.cli import main
from tasks.data import DataError
from tasks.one_shot import (
    BASELINES,
    OneShotRun,
    OneShotRuns,
    evaluate_runs,
    load_runs,
    mhd_scores,
    modified_hausdorff,
)
from tasks.one_shot.baselines import ink_points

WAYS = 4


def _png(ink: np.ndarray) -> bytes:
    """A 1-bit PNG of the bool ``ink`` image, 1 = background (the archive's format)."""
    buffer = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def _glyph(k: int, jitter: int = 0, side: int = 21) -> np.ndarray:
    """Character ``k``: a bar at a class-specific angle, shifted by ``jitter``."""
    ink = np.zeros((side, side), dtype=bool)
    for t in range(-7, 8):
        r, c = [(t, 0), (0, t), (t, t), (t, -t)][k % 4]
        ink[side // 2 + r + jitter, side // 2 + c] = True
    return ink


def _fake_archive(path: Path, *, runs: int = 2, drop: set[str] = frozenset(), lines=None) -> Path:
    """A small archive with the official layout (``runNN/…``); ``drop`` omits files, ``lines``
    replaces run01's label lines."""
    files: dict[str, bytes] = {}
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        order = [(q * 3 + r) % WAYS for q in range(WAYS)]  # query q is of class order[q]
        for k in range(WAYS):
            files[f"{run}/training/class{k + 1:02d}.png"] = _png(_glyph(k))
            files[f"{run}/test/item{k + 1:02d}.png"] = _png(_glyph(order[k], jitter=1))
        default = [
            f"{run}/test/item{q + 1:02d}.png {run}/training/class{order[q] + 1:02d}.png"
            for q in range(WAYS)
        ]
        text = "\n".join(lines if lines is not None and r == 1 else default) + "\n"
        files[f"{run}/class_labels.txt"] = text.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            if name not in drop:
                archive.writestr(name, data)
    return path


def _run_of(supports: torch.Tensor, queries: torch.Tensor, labels: list[int]) -> OneShotRun:
    return OneShotRun(
        name="run99",
        supports=supports.float(),
        queries=queries.float(),
        labels=torch.tensor(labels),
        support_names=tuple(f"run99/training/class{k + 1:02d}.png" for k in range(len(supports))),
        query_names=tuple(f"run99/test/item{k + 1:02d}.png" for k in range(len(queries))),
        supports_binary=supports,
        queries_binary=queries,
    )


# ----------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def official_runs(real_data_dir: Path) -> OneShotRuns:
    return load_runs(data_dir=real_data_dir)


def test_run01_pairing_as_documented(official_runs: OneShotRuns) -> None:
    assert len(official_runs.runs) == 20 and official_runs.source["official"]
    run = official_runs.runs[0]
    assert run.name == "run01"
    names = [Path(run.support_names[int(k)]).stem for k in run.labels[:3]]
    assert [Path(q).stem for q in run.query_names[:3]] == ["item01", "item02", "item03"]
    assert names == ["class08", "class09", "class02"]
    assert run.supports.shape == run.queries.shape == (20, 1, 50, 50)
    assert (
        run.supports_binary.shape == (20, 1, 105, 105) and run.supports_binary.dtype == torch.bool
    )
    assert 0.0 <= float(run.queries.min()) and float(run.queries.max()) <= 1.0
    assert run.metadata["alphabet"] == "Atlantean" and run.metadata["matched"] == 40


def test_mhd_error_is_the_official_demo_s(official_runs: OneShotRuns) -> None:
    """demo_classification states 38.8% error; the 20 runs give 155 errors of 400 queries."""
    result = evaluate_runs(official_runs, mhd_scores, name="mhd", progress=False)
    assert sum(r["errors"] for r in result["per_run"]) == 155
    assert result["mean_error"] == pytest.approx(0.3875)
    assert result["stderr"] > 0


# ----------------------------------------------------------------------------- loader errors
def test_fake_archive_loads_with_its_pairing(tmp_path: Path) -> None:
    runs = load_runs(_fake_archive(tmp_path / "runs.zip"), metadata=False)
    assert [r.name for r in runs.runs] == ["run01", "run02"] and not runs.source["official"]
    run = runs.runs[0]
    assert run.labels.tolist() == [(q * 3 + 1) % WAYS for q in range(WAYS)]
    assert run.supports.shape == (WAYS, 1, 50, 50) and run.queries_binary.shape[-1] == 21


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="all_runs.zip"):
        load_runs(data_dir=tmp_path)
    with pytest.raises(DataError, match="nowhere.zip"):
        load_runs(tmp_path / "nowhere.zip")


def test_corrupt_archive(tmp_path: Path) -> None:
    path = tmp_path / "runs.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="corrupt"):
        load_runs(path)
    (tmp_path / "omniglot").mkdir()
    (tmp_path / "omniglot" / "all_runs.zip").write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="checksum mismatch"):
        load_runs(data_dir=tmp_path)


def test_run_without_label_file(tmp_path: Path) -> None:
    path = _fake_archive(tmp_path / "runs.zip", drop={"run02/class_labels.txt"})
    with pytest.raises(DataError, match=r"run run02 has no label file run02/class_labels\.txt"):
        load_runs(path, metadata=False)


def test_label_line_naming_a_missing_file(tmp_path: Path) -> None:
    lines = [
        "run01/test/item01.png run01/training/class01.png",
        "run01/test/item02.png run01/training/class07.png",
    ]
    path = _fake_archive(tmp_path / "runs.zip", lines=lines)
    with pytest.raises(DataError, match=r"run run01.*line 2.*run01/training/class07\.png"):
        load_runs(path, metadata=False)
    path = _fake_archive(tmp_path / "runs.zip", drop={"run02/test/item03.png"})
    with pytest.raises(DataError, match=r"run run02.*line 3.*run02/test/item03\.png"):
        load_runs(path, metadata=False)


# ----------------------------------------------------------------------------- baselines
def test_mhd_on_an_analytic_case() -> None:
    a = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])]
    b = [torch.tensor([[0.0, 0.0], [3.0, 4.0]])]
    # a0 -> b: 0; b -> a0: (0 + 5) / 2. a1 -> b: (0 + 2) / 2; b -> a1: (0 + sqrt(9 + 4)) / 2
    expected = torch.tensor([[2.5], [max(1.0, np.sqrt(13.0) / 2)]], dtype=torch.float64)
    torch.testing.assert_close(modified_hausdorff(a, b), expected)
    assert torch.isinf(modified_hausdorff([torch.zeros(0, 2)], b)).all()


def test_mhd_matches_brute_force_and_centres_ink() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 12, 12, generator=gen) < 0.2
    points = ink_points(images)
    assert all(torch.allclose(p.mean(0), torch.zeros(2, dtype=torch.float64)) for p in points)
    brute = torch.tensor(
        [
            [
                max(torch.cdist(p, q).amin(1).mean(), torch.cdist(p, q).amin(0).mean())
                for q in points[2:]
            ]
            for p in points[:2]
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(modified_hausdorff(points[:2], points[2:]), brute)


@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_permuting_supports_permutes_scores(baseline: str) -> None:
    gen = torch.Generator().manual_seed(1)
    supports = torch.rand(6, 1, 16, 16, generator=gen) < 0.3
    queries = torch.rand(4, 1, 16, 16, generator=gen) < 0.3
    perm = torch.randperm(6, generator=gen)
    scores = BASELINES[baseline](_run_of(supports, queries, [0, 1, 2, 3]))
    permuted = BASELINES[baseline](_run_of(supports[perm], queries, [0, 1, 2, 3]))
    torch.testing.assert_close(permuted, scores[:, perm])


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_cli_writes_the_documented_json(tmp_path: Path, baseline: str, capsys) -> None:
    path = _fake_archive(tmp_path / "runs.zip")
    out = tmp_path / "out"
    argv = ["one-shot", "--baseline", baseline, "--runs", str(path), "--out", str(out)]
    assert main([*argv, "--data-dir", str(tmp_path), "--threads", "1", "--no-progress"]) == 0
    result = json.loads((out / f"one_shot_{baseline}.json").read_text())
    assert {"mean_accuracy", "stderr", "per_run", "baseline", "settings", "seconds"} <= set(result)
    assert result["baseline"] == baseline and len(result["per_run"]) == 2
    assert {"run", "accuracy", "errors", "mistakes"} <= set(result["per_run"][0])
    assert 0.0 <= result["mean_accuracy"] <= 1.0
    assert (out / f"one_shot_{baseline}.png").is_file()
    assert f"one-shot {baseline}: accuracy" in capsys.readouterr().out


def test_cli_reports_a_missing_archive(tmp_path: Path, capsys) -> None:
    argv = ["one-shot", "--baseline", "mhd", "--runs", str(tmp_path / "none.zip")]
    assert main([*argv, "--no-progress"]) == 1
    assert "none.zip" in capsys.readouterr().err
