"""The cross-dataset study (tasks/transfer/, DooD Fig. 4): the table over seeds, its pictures,
``pyro-draw transfer`` end to end on tiny checkpoints and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import pytest
import torch

import tasks.cli
from generative.air import AirConfig
from inference.checkpoint import save_checkpoint
from tasks.data import DataError
from tasks.dood import FAMILY
from tasks.transfer import (
    TransferOptions,
    save_transfer_heatmap,
    save_transfer_reconstructions,
    summarise_cells,
)
from tests.test_frechet import _draw_checkpoint
from tests.tiny import AIR_TINY, tiny_dood_pair

SIZE = 16


@pytest.fixture(autouse=True)
def _quiet_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(False):
        yield


def _cell(model: str, source: str, target: str, value: float, seed: int) -> dict:
    return {
        "checkpoint": f"{model}_{source}_{seed}.pt",
        "model": model,
        "config_name": "hours",
        "source": source,
        "target": target,
        "image_size": 50,
        "log_likelihood": value,
        "num_examples": 10,
        "iwae_samples": 200,
        "examples_per_second": 2.0 + seed,
        "step": 1000 + seed,
    }


def _cells() -> list[dict]:
    cells = [_cell("dood", "mnist", "mnist", v, s) for s, v in enumerate((7000.0, 7100.0, 7300.0))]
    cells += [_cell("dood", "mnist", "omniglot", v, s) for s, v in enumerate((4000.0, 4100.0))]
    cells += [_cell("difference-air", "mnist", "mnist", 900.0, 0)]
    return cells


def test_table_gives_mean_and_sd_over_seeds_with_official_references() -> None:
    table = summarise_cells(_cells(), ["mnist", "omniglot"])
    by = {(row["model"], row["target"]): row for row in table}
    assert len(table) == 3
    mm = by["dood", "mnist"]
    assert mm["mean"] == pytest.approx(7133.333333) and mm["num_checkpoints"] == 3
    assert mm["sd"] == pytest.approx(152.7525, rel=1e-6)  # sample sd (ddof = 1)
    assert mm["examples_per_second"] == pytest.approx(3.0)
    assert mm["steps"] == [1000, 1001, 1002]
    assert mm["official"]["mean"] == 7094 and mm["official"]["sd"] == 65
    assert "REFERENCE, not ours" in mm["official"]["label"]
    assert by["dood", "omniglot"]["official"]["mean"] == 4808
    air = by["difference-air", "mnist"]
    assert air["sd"] is None and air["official"] is None  # one checkpoint; not DooD
    assert mm["source"] == "dood hours: mnist (50px)"


def test_pictures_are_written(tmp_path: Path) -> None:
    table = summarise_cells(_cells(), ["mnist", "omniglot"])
    heat = save_transfer_heatmap(table, ["mnist", "omniglot"], tmp_path / "heat.png")
    assert heat.stat().st_size > 5000
    originals = {"mnist": torch.rand(3, 1, 20, 20), "omniglot": torch.rand(3, 1, 20, 20)}
    rows = [("dood", {"mnist": torch.rand(3, 1, 20, 20), "omniglot": torch.rand(3, 1, 20, 20)})]
    rows.append(("air (small)", {"mnist": torch.rand(3, 1, 12, 12)}))  # another size; a gap
    picture = save_transfer_reconstructions(originals, rows, tmp_path / "recs.png")
    assert picture.stat().st_size > 2000
    with pytest.raises(ValueError, match="empty"):
        save_transfer_heatmap([], ["mnist"], tmp_path / "none.png")


def _save(path: Path, name: str, config: dict, model, guide) -> Path:
    record = {
        "model": name,
        "model_config": config,
        "model_state": model.state_dict(),
        "guide_state": guide.state_dict(),
        "step": 0,
        "data": {"dataset": "glyphs"},
        "config_name": "small",
    }
    return save_checkpoint(record, path)


def _checkpoints(tmp_path: Path) -> list[Path]:
    paths = []
    for seed in (0, 1):
        model, guide, config = tiny_dood_pair(SIZE, seed=seed)
        paths.append(_save(tmp_path / f"dood{seed}.pt", "dood", config, model, guide))
    torch.manual_seed(2)
    config = AirConfig(**AIR_TINY, difference=True).to_dict()
    model, guide = FAMILY.model("difference-air").build(config)
    paths.append(_save(tmp_path / "air.pt", "difference-air", config, model, guide))
    return paths


FAST = ["--iwae-samples", "2", "--num-examples", "3", "--num-pictures", "2", "--no-progress"]
FAST += ["--threads", "1"]


def test_transfer_command_end_to_end(tmp_path: Path, capsys) -> None:
    paths = [str(p) for p in _checkpoints(tmp_path)]
    out = tmp_path / "transfer"
    argv = ["transfer", *paths, "--targets", "glyphs", "--out", str(out), *FAST]
    assert tasks.cli.main(argv) == 0, capsys.readouterr().err
    result = json.loads((out / "transfer.json").read_text())
    assert len(result["cells"]) == 3 and result["targets"] == ["glyphs"]
    rows = {row["model"]: row for row in result["table"]}
    assert rows["dood"]["num_checkpoints"] == 2 and rows["dood"]["sd"] is not None
    assert rows["difference-air"]["num_checkpoints"] == 1 and rows["difference-air"]["sd"] is None
    dood_values = rows["dood"]["values"]
    assert rows["dood"]["mean"] == pytest.approx(sum(dood_values) / 2)
    assert all(cell["examples_per_second"] > 0 for cell in result["cells"])
    assert all(cell["num_examples"] == 3 for cell in result["cells"])
    assert "REFERENCE" in result["reference_official_dood_500k"]["label"]
    for name in ("transfer_heatmap.png", "transfer_reconstructions.png"):
        assert (out / name).stat().st_size > 2000, name
    assert "dood small: glyphs (16px) -> glyphs" in capsys.readouterr().out


def test_reuse_takes_earlier_cells_of_the_same_protocol_and_evaluates_the_rest(
    tmp_path: Path, capsys
) -> None:
    dood0, dood1, air = (str(p) for p in _checkpoints(tmp_path))
    first = tmp_path / "first"
    argv = ["transfer", dood0, air, "--targets", "glyphs", *FAST]
    assert tasks.cli.main([*argv, "--out", str(first)]) == 0
    earlier = json.loads((first / "transfer.json").read_text())
    second = tmp_path / "second"
    argv = ["transfer", dood0, dood1, air, "--targets", "glyphs", *FAST]
    reuse = ["--reuse", str(first / "transfer.json")]
    assert tasks.cli.main([*argv, "--out", str(second), *reuse]) == 0
    result = json.loads((second / "transfer.json").read_text())
    by_path = {cell["checkpoint"]: cell for cell in result["cells"]}
    for cell in earlier["cells"]:  # taken as they were, and labelled
        again = by_path[cell["checkpoint"]]
        assert again["log_likelihood"] == cell["log_likelihood"]
        assert again["reused_from"] == str(first / "transfer.json")
    new = by_path[str(Path(dood1).resolve())]
    assert "reused_from" not in new and new["num_examples"] == 3
    assert "reused from" in capsys.readouterr().out
    rows = {row["model"]: row for row in result["table"]}
    assert rows["dood"]["num_checkpoints"] == 2
    # another K is another protocol: refused before any work, naming the file and the field
    never = tmp_path / "never"
    bad = [*argv, "--out", str(never), *reuse, "--iwae-samples", "3"]
    assert tasks.cli.main(bad) == 1
    err = capsys.readouterr().err
    assert "--reuse" in err and "'iwae_samples' is 2 there and 3 here" in err
    assert not never.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert tasks.cli.main([*argv, "--out", str(never), "--reuse", str(broken)]) == 1
    assert "not a readable transfer.json" in capsys.readouterr().err and not never.exists()


def test_transfer_to_a_file_dataset(tmp_path: Path, real_data_dir: Path) -> None:
    model, guide, config = tiny_dood_pair(SIZE)
    path = _save(tmp_path / "dood.pt", "dood", config, model, guide)
    out = tmp_path / "t"
    argv = ["transfer", str(path), "--targets", "mnist", "glyphs", "--out", str(out), *FAST]
    assert tasks.cli.main(argv + ["--data-dir", str(real_data_dir)]) == 0
    result = json.loads((out / "transfer.json").read_text())
    assert [row["target"] for row in result["table"]] == ["mnist", "glyphs"]
    assert {cell["image_size"] for cell in result["cells"]} == {SIZE}  # at the model's size


def test_transfer_refuses_bad_input_before_any_work(tmp_path: Path, capsys) -> None:
    dood = str(_checkpoints(tmp_path)[0])
    draw = str(_draw_checkpoint(tmp_path / "draw.pt"))
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:  # an unknown target: refused when parsing
        tasks.cli.main(["transfer", dood, "--targets", "svhn", "--out", str(out)])
    assert exc.value.code == 2 and "--targets: expected one of mnist" in capsys.readouterr().err
    assert tasks.cli.main(["transfer", dood, "--targets", "emnist", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--targets emnist" in err and "not available" in err
    assert tasks.cli.main(["transfer", dood, draw, "--targets", "glyphs", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds a 'draw' model" in err and "dood, air, difference-air" in err
    assert not out.exists()
    with pytest.raises(ValueError, match="--targets"):
        TransferOptions(checkpoints=[dood], targets=["svhn"])
    with pytest.raises(DataError, match="not available"):
        TransferOptions(checkpoints=[dood], targets=["kmnist"])
    with pytest.raises(ValueError, match="at least one CHECKPOINT"):
        TransferOptions(targets=["glyphs"])
