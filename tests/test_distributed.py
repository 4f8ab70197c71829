"""Data-parallel training under torchrun (inference/distributed.py): 2 CPU processes (gloo)
follow the single-process trajectory, for an ELBO model (DRAW), an annealed-KL model
(sketch-rnn), REINFORCE models (RAM, Catch) and the NVIL / enumerated DooD; checkpoints move
between world sizes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from inference.distributed import ShardedBatches, ShardNoise, World, step_generator
from tasks.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--threads", "1", "--no-progress", "--no-pictures", "--log-every", "1"]
STEPS = 3

MODELS = {
    "draw": ["draw", "--config", "small", "--dataset", "glyphs", "--batch-size", "8"]
    + ["--num-train", "64", "--iwae-samples", "2", "--eval-examples", "8"],
    "sketch-rnn": ["sketch-rnn", "--config", "small", "--dataset", "glyphs", "--batch-size", "8"]
    + ["--valid-examples", "8", "--iwae-samples", "0", "--eval-examples", "8"],
    "ram": ["ram", "--config", "small", "--dataset", "mnist", "--batch-size", "8"]
    + ["--num-train", "64", "--num-valid", "16", "--eval-examples", "16"],
    "ram-catch": ["ram-catch", "--batch-size", "8", "--eval-games", "8"],
    "dood-nvil": ["dood", "--config", "small", "--dataset", "glyphs", "--stop", "nvil"]
    + ["--batch-size", "4", "--num-train", "16", "--iwae-samples", "2", "--eval-examples", "4"],
    "dood-enum": ["dood", "--config", "small", "--dataset", "glyphs", "--stop", "enum"]
    + ["--batch-size", "4", "--num-train", "16", "--iwae-samples", "2", "--eval-examples", "4"],
}


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", "-m", "tasks.cli", "train", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    return [r["loss"] for r in rows if "loss" in r]


def _parameters(out: Path) -> dict[str, torch.Tensor]:
    data = torch.load(out / "checkpoint.pt", weights_only=True)
    states = {"m": data["model_state"], "g": data["guide_state"]}
    states["o"] = data.get("objective_state", {})
    return {f"{p}.{k}": v for p, s in states.items() for k, v in s.items() if v.is_floating_point()}


def _assert_same_run(one: Path, two: Path, steps: int = STEPS) -> None:
    """Losses to 1e-6 (relative); parameters to 1e-4 = lr/10: Adam divides by √v, so a gradient
    that is ~0 on one side and rounding noise (~1e-10) on the other moves by up to ~lr/100."""
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == steps
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-6, atol=1e-6)
    pa, pb = _parameters(one), _parameters(two)
    assert pa.keys() == pb.keys()
    for key in pa:  # the objective's running moments (NVIL) are large: compare them relatively
        rtol, atol = (1e-5, 1e-6) if key.startswith("o.") else (0.0, 1e-4)
        torch.testing.assert_close(pb[key], pa[key], rtol=rtol, atol=atol, msg=key)


@pytest.mark.parametrize("name", list(MODELS))
def test_two_processes_follow_the_single_process_trajectory(name, tmp_path, real_data_dir):
    args = [*MODELS[name], "--steps", str(STEPS), *COMMON]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    _torchrun([*args, "--out", str(tmp_path / "two")])
    _assert_same_run(tmp_path / "one", tmp_path / "two")


def test_checkpoints_move_between_world_sizes(tmp_path, capsys):
    """Two processes for 2 steps, one for 2 more; and one, then two: both equal 4 straight."""
    base = [*MODELS["draw"], *COMMON]
    assert main(["train", *base, "--steps", "4", "--out", str(tmp_path / "straight")]) == 0
    _torchrun([*base, "--steps", "2", "--out", str(tmp_path / "a")])
    resume = ["--steps", "4", "--resume", str(tmp_path / "a" / "checkpoint.pt")]
    assert main(["train", *base, *resume, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *base, "--steps", "2", "--out", str(tmp_path / "b")]) == 0
    resume = ["--steps", "4", "--resume", str(tmp_path / "b" / "checkpoint.pt")]
    _torchrun([*base, *resume, "--out", str(tmp_path / "b")])
    _assert_same_run(tmp_path / "straight", tmp_path / "a", steps=4)
    _assert_same_run(tmp_path / "straight", tmp_path / "b", steps=4)
    # a checkpoint written under torchrun is an ordinary one, and evaluation shards its
    # examples over the ranks with the single-process result
    evaluate = ["evaluate", str(tmp_path / "b" / "checkpoint.pt"), "--iwae-samples", "3"]
    evaluate += ["--num-examples", "40", "--batch-size", "16", "--no-progress"]
    assert main([*evaluate, "--json", str(tmp_path / "one.json")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node=2", "-m", "tasks.cli", *evaluate]
    command += ["--json", str(tmp_path / "two.json")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert len(two["per_example"]["log_likelihood"]) == 40
    for key in ("log_likelihood", "elbo"):
        torch.testing.assert_close(
            torch.tensor(two["per_example"][key]), torch.tensor(one["per_example"][key])
        )
    assert "sharded over 2 processes" in done.stdout


def test_nproc_shortcut_launches_torchrun(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *MODELS["draw"], "--steps", "2", *COMMON, "--out", str(out), "--nproc", "2"]
    assert main(args) == 0
    assert "torch.distributed.run --standalone --nproc-per-node=2" in capsys.readouterr().err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2


def test_sigterm_to_the_nproc_launcher_checkpoints_every_rank_and_stops(tmp_path):
    """``kill <pid of pyro-draw train --nproc 2>`` reaches the workers (not an orphaned torchrun):
    they finish the step, write the checkpoint and the launcher exits."""
    out = tmp_path / "run"
    args = ["train", *MODELS["draw"], "--steps", "100000", *COMMON, "--out", str(out)]
    args += ["--checkpoint-every", "100000", "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = "import sys; from tasks.cli import main; sys.exit(main(sys.argv[1:]))"
    launcher = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so that cleanup reaches every child
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists() or len(_losses(out)) < 2:
            assert launcher.poll() is None and time.monotonic() < deadline, "no training steps"
            time.sleep(0.5)
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0
    assert "stopped: SIGTERM at step" in stderr
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 2 <= step < 100000


# ------------------------------------------------------------------------------ pieces
class _Source:
    batch_size = 6

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        return torch.arange(6) + 10 * step, torch.arange(12).reshape(6, 2)


def test_sharded_batches_split_each_global_batch_in_rank_order():
    shards = [ShardedBatches(_Source(), World(rank, 3)) for rank in range(3)]
    parts = [s.batch(2) for s in shards]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), _Source().batch(2)[0])
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), _Source().batch(2)[1])
    assert shards[0].batch_size == 6 and shards[0].local == 2
    with pytest.raises(ValueError, match="not divisible by the 4 processes"):
        ShardedBatches(_Source(), World(0, 4))


@pytest.mark.parametrize("kind", ["normal", "bernoulli", "categorical", "uniform"])
def test_shard_noise_gives_each_example_the_same_draw_whatever_the_world(kind):
    import pyro
    import pyro.distributions as dist

    torch.manual_seed(0)
    params = torch.randn(8, 3)

    def model(rows: slice):
        p = params[rows]
        with pyro.plate("data", p.shape[0]):
            if kind == "normal":
                return pyro.sample("v", dist.Normal(p, 1.0).to_event(1))
            if kind == "bernoulli":
                return pyro.sample("v", dist.Bernoulli(logits=p).to_event(1))
            if kind == "categorical":
                return pyro.sample("v", dist.Categorical(logits=p))
            return pyro.sample("v", dist.Uniform(p, p + 1).to_event(1))

    with ShardNoise(step_generator(0, 5), World(0, 1)):
        whole = model(slice(0, 8))
    halves = []
    for rank in range(2):
        with ShardNoise(step_generator(0, 5), World(rank, 2)):
            halves.append(model(slice(4 * rank, 4 * rank + 4)))
    torch.testing.assert_close(torch.cat(halves), whole)
    if kind == "normal":  # reparameterised: the value carries the gradient
        params.requires_grad_(True)
        with ShardNoise(step_generator(0, 5), World(0, 1)):
            model(slice(0, 8)).sum().backward()
        torch.testing.assert_close(params.grad, torch.ones(8, 3))
    # the draws follow the distribution
    many = []
    for step in range(300):
        with ShardNoise(step_generator(1, step), World(0, 1)):
            many.append(model(slice(0, 8)).float())
    mean = torch.stack(many).mean(0)
    expected = {
        "normal": params.detach(),
        "bernoulli": torch.sigmoid(params.detach()),
        "uniform": params.detach() + 0.5,
        "categorical": (torch.softmax(params.detach(), -1) * torch.arange(3.0)).sum(-1),
    }[kind]
    torch.testing.assert_close(mean, expected, atol=0.2, rtol=0)


def test_shard_noise_refuses_a_distribution_it_cannot_shard():
    import pyro
    import pyro.distributions as dist

    with ShardNoise(step_generator(0, 0), World(0, 1)), pyro.plate("data", 3):
        with pytest.raises(NotImplementedError, match="site 'g'.*Gamma"):
            pyro.sample("g", dist.Gamma(torch.ones(3), 1.0))
