"""The SVI trainer: checkpoints, exact resume, non-finite losses."""

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from generative.draw import DrawConfig, DrawModel
from guides.draw import DrawGuide
from inference.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from inference.trainer import NonFiniteLossError, SVITrainer, TrainConfig, TrainingInterrupted
from tasks.data.batches import ImageBatches

TINY = DrawConfig(
    height=10,
    width=10,
    steps=3,
    encoder_size=12,
    decoder_size=12,
    z_size=2,
    read_size=2,
    write_size=3,
)


def _images(n=40, seed=0):
    return torch.rand(n, 1, 10, 10, generator=torch.Generator().manual_seed(seed))


def _trainer(tmp_path, steps, *, init_seed=0, checkpoint_every=3, validate=None):
    torch.manual_seed(init_seed)
    model = DrawModel(TINY)
    guide = DrawGuide(model)
    batches = ImageBatches(_images(), 8, seed=1, dynamic_binarization=True)
    config = TrainConfig(
        steps=steps,
        batch_size=8,
        lr=1e-2,
        seed=2,
        log_every=1,
        validate_every=2,
        checkpoint_every=checkpoint_every,
    )
    extra = {"model": "draw", "model_config": TINY.to_dict()}
    return SVITrainer(
        model,
        guide,
        batches,
        config,
        out_dir=tmp_path,
        checkpoint_extra=extra,
        validate=validate,
        progress=False,
    )


def _state(trainer):
    return {
        **{f"m.{k}": v for k, v in trainer.model.state_dict().items()},
        **{f"g.{k}": v for k, v in trainer.guide.state_dict().items()},
    }


def test_batches_are_a_deterministic_function_of_the_step():
    images = _images(30)
    a = ImageBatches(images, 7, seed=3, dynamic_binarization=True)
    b = ImageBatches(images, 7, seed=3, dynamic_binarization=True)
    assert a.batches_per_epoch == 4
    for step in [5, 0, 9, 4]:
        torch.testing.assert_close(a.batch(step)[0], b.batch(step)[0])
    assert set(a.batch(0)[0].unique().tolist()) <= {0.0, 1.0}
    seen = torch.cat([ImageBatches(images, 7, seed=3).batch(s)[0] for s in range(4)])
    assert len({tuple(r.flatten().tolist()) for r in seen}) == 28  # an epoch has no repeats


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", steps=6, validate=lambda: {"v": 0.0})
    straight.fit()
    first = _trainer(tmp_path / "b", steps=3, validate=lambda: {"v": 0.0})
    first.fit()
    resumed = _trainer(tmp_path / "c", steps=6, init_seed=99, validate=lambda: {"v": 0.0})
    resumed.resume(tmp_path / "b" / "checkpoint.pt")
    assert resumed.state.step == 3
    resumed.fit()
    a, c = _state(straight), _state(resumed)
    assert a.keys() == c.keys()
    for key in a:
        assert torch.equal(a[key], c[key]), key
    assert (tmp_path / "a" / "metrics.jsonl").read_text().count("\n") >= 6


def test_run_resumes_when_asked_and_reports_this_runs_steps(tmp_path, capsys):
    first = _trainer(tmp_path / "b", steps=3)
    assert first.run().steps == 3
    resumed = _trainer(tmp_path / "c", steps=5, init_seed=99)
    run = resumed.run(tmp_path / "b" / "checkpoint.pt")
    assert (run.steps, resumed.state.step) == (2, 5) and run.seconds > 0
    assert f"checkpoint: {resumed.checkpoint_path}" in capsys.readouterr().out


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    from tasks.families import load_trained

    trainer = _trainer(tmp_path, steps=2, checkpoint_every=2)
    trainer.fit()
    model, guide, data = load_trained(tmp_path / "checkpoint.pt")
    assert data.step == 2 and data.model_config == TINY.to_dict()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    for k, v in trainer.guide.state_dict().items():
        assert torch.equal(guide.state_dict()[k], v)
    assert not any(k.startswith("draw_model") for k in guide.state_dict())


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, steps=4, checkpoint_every=2)
    trainer.config.steps = 2
    trainer.fit()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    trainer.config.steps = 4
    with torch.no_grad():
        trainer.model.canvas0.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 2.*left intact"):
        trainer.fit()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_checkpoint_errors_are_specific(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is a text file"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a pyro-draw checkpoint"):
        load_checkpoint(foreign)
    good = save_checkpoint(
        {"model": "draw", "model_config": {}, "model_state": {}, "guide_state": {}, "step": 0},
        tmp_path / "good.pt",
    )
    with pytest.raises(CheckpointError, match="holds a 'draw' model, expected 'ram'"):
        load_checkpoint(good, expected_model="ram")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    payload = {"model": "draw", "model_config": {}, "model_state": {}, "guide_state": {}, "step": 1}
    path = save_checkpoint(payload, tmp_path / "ckpt.pt")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**payload, "step": 2}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_resume_rejects_a_different_configuration(tmp_path):
    trainer = _trainer(tmp_path, steps=1, checkpoint_every=1)
    trainer.fit()
    other = _trainer(tmp_path / "o", steps=2)
    other.extra = {**other.extra, "model_config": {**TINY.to_dict(), "z_size": 5}}
    with pytest.raises(ValueError, match="differs"):
        other.resume(tmp_path / "checkpoint.pt")


class _ScaledELBO(torch.nn.Module):
    """A custom objective owning a parameter: −ELBO/B · exp(a) + a² (minimised at a → small)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.5))
        self.calls: list[int] = []

    def forward(self, model, guide, args, step):
        import pyro

        self.calls.append(step)
        elbo = pyro.infer.Trace_ELBO().differentiable_loss(model.model, guide.guide, *args)
        loss = elbo / args[0].shape[0] * torch.exp(self.a).detach() + self.a**2
        return loss, {"a": self.a.item()}


def _custom_trainer(tmp_path, steps, **config):
    torch.manual_seed(0)
    model = DrawModel(TINY)
    guide = DrawGuide(model)
    objective = _ScaledELBO()
    cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-2, seed=2, log_every=1, **config)
    trainer = SVITrainer(
        model,
        guide,
        ImageBatches(_images(), 8, seed=1),
        cfg,
        out_dir=tmp_path,
        checkpoint_extra={"model": "draw", "model_config": TINY.to_dict()},
        objective=objective,
        progress=False,
    )
    return trainer, objective


def test_custom_objective_is_called_with_the_step_and_its_parameters_are_trained(tmp_path):
    trainer, objective = _custom_trainer(tmp_path, 4, lr_groups={"objective.": 0.1})
    trainer.fit()
    assert objective.calls == [0, 1, 2, 3]
    assert objective.a.item() < 0.5  # its own parameter was optimised
    rates = sorted(g["lr"] for g in trainer.optimizer.param_groups)
    assert rates == [1e-2, 0.1]
    assert "a" in trainer.state.history[-1]  # objective metrics are logged
    assert "objective_state" in load_checkpoint(trainer.checkpoint_path)


def test_resume_restores_the_objective_state(tmp_path):
    full, full_obj = _custom_trainer(tmp_path / "full", 4)
    full.fit()
    half, _ = _custom_trainer(tmp_path / "half", 2)
    half.config.checkpoint_every = 2
    half.fit()
    resumed, resumed_obj = _custom_trainer(tmp_path / "resumed", 4)
    resumed.resume(tmp_path / "half" / "checkpoint.pt")
    resumed.fit()
    assert torch.equal(resumed_obj.a, full_obj.a)


def test_learning_rate_decay_and_floor(tmp_path):
    trainer, _ = _custom_trainer(tmp_path, 3, lr_decay=0.5, min_lr=3e-3)
    trainer.fit()
    # the rate of the last step (t = 2): max(3e-3, 1e-2 · 0.5²) = 3e-3
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [3e-3]


def _step_gradient_magnitudes(trainer):
    """|gradient| of every parameter element after one training step, flat."""
    trainer.train_step(trainer.batches.batch(0))
    return torch.cat([p.grad.abs().flatten() for p in trainer.params if p.grad is not None])


def test_clip_value_bounds_every_gradient_element_before_the_step(tmp_path):
    """``clip_value`` is the sketch-rnn reference code's tf.clip_by_value: each element alone."""
    trainer = _trainer(tmp_path, steps=1)
    trainer.config = replace(trainer.config, clip_norm=None, clip_value=None)
    raw = _step_gradient_magnitudes(trainer)
    bound = float(raw.median())  # half the elements are larger: clipping must act on them
    trainer = _trainer(tmp_path / "clipped", steps=1)
    trainer.config = replace(trainer.config, clip_norm=None, clip_value=bound)
    clipped = _step_gradient_magnitudes(trainer)
    assert float(clipped.max()) <= bound
    torch.testing.assert_close(clipped, raw.clamp(max=bound))  # the rest is unchanged


def test_unknown_lr_group_prefix_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="match no parameter"):
        _custom_trainer(tmp_path, 1, lr_groups={"modle.": 1e-3})


def test_checkpoints_and_result_files_get_the_usual_file_mode(tmp_path):
    import os

    from tasks.results import write_json

    mask = os.umask(0o022)
    try:
        ckpt = save_checkpoint(
            {"model": "draw", "model_config": {}, "model_state": {}, "guide_state": {}, "step": 0},
            tmp_path / "c.pt",
        )
        write_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(mask)
    assert (ckpt.stat().st_mode & 0o777) == 0o644
    assert ((tmp_path / "r.json").stat().st_mode & 0o777) == 0o644


def test_non_finite_loss_without_a_checkpoint_says_there_is_none(tmp_path):
    trainer = _trainer(tmp_path, steps=2, checkpoint_every=2)
    with torch.no_grad():
        trainer.model.canvas0.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="No checkpoint had been written yet"):
        trainer.fit()


def test_resume_drops_the_metrics_rows_it_will_replay(tmp_path):
    first = _trainer(tmp_path, steps=5, checkpoint_every=3)  # checkpoint at 3, metrics to 5
    first.fit()
    resumed = _trainer(tmp_path, steps=6, checkpoint_every=3)
    resumed.resume(tmp_path / "checkpoint.pt")  # step 5 (the last save at steps == 5)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert max(steps) == 5
    save_checkpoint(first.checkpoint() | {"step": 3}, tmp_path / "at3.pt")
    again = _trainer(tmp_path, steps=6, validate=lambda: {"v": 0.0})  # validates at even steps
    again.resume(tmp_path / "at3.pt")
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]
    again.fit()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert [s for s in steps if s > 3] == [4, 4, 5, 6, 6]  # each step once (+ validations)


def test_wall_clock_checkpoints_come_whichever_first(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, steps=3, checkpoint_every=1000)
    trainer.config.checkpoint_seconds = 0.0  # every step is past the interval
    saved = []
    monkeypatch.setattr(trainer, "save", lambda: saved.append(trainer.state.step))
    trainer.fit()
    assert saved == [1, 2, 3]
    trainer = _trainer(tmp_path / "b", steps=3, checkpoint_every=1000)
    saved = []
    monkeypatch.setattr(trainer, "save", lambda: saved.append(trainer.state.step))
    trainer.fit()
    assert saved == [3]  # the default 10 minutes did not pass


def test_sigterm_finishes_the_step_checkpoints_and_stops(tmp_path):
    trainer = _trainer(tmp_path, steps=50, checkpoint_every=1000)
    objective = trainer.objective

    def signalling(model, guide, args, step):
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return objective(model, guide, args, step)

    trainer.objective = signalling
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 5.*--resume") as info:
        trainer.fit()
    assert info.value.signal_number == signal.SIGTERM
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_kill_9_leaves_a_checkpoint_that_resumes_exactly(tmp_path):
    """A training process killed with SIGKILL between checkpoints: its last checkpoint loads
    and, resumed, reaches the parameters of an uninterrupted run."""
    import subprocess
    import sys
    import time

    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_training as t
from pathlib import Path
trainer = t._trainer(Path({str(tmp_path / "killed")!r}), steps=10**6, checkpoint_every=4)
trainer.fit()
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not (
        checkpoint.exists() and load_checkpoint(checkpoint)["step"] >= 8
    ):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    step = load_checkpoint(checkpoint)["step"]
    assert step >= 8 and step % 4 == 0
    resumed = _trainer(tmp_path / "killed", steps=step + 3)
    resumed.resume(checkpoint)
    resumed.fit()
    straight = _trainer(tmp_path / "straight", steps=step + 3)
    straight.fit()
    a, b = _state(straight), _state(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key


class _Events:
    def __init__(self):
        self.scalars, self.images, self.closed = [], [], False

    def add_scalar(self, tag, value, global_step):
        self.scalars.append((tag, value, global_step))

    def add_image(self, tag, img, global_step, dataformats):
        self.images.append((tag, img.shape, global_step, dataformats))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_every_logged_record_reaches_the_event_writer(tmp_path):
    events = _Events()
    trainer = _trainer(tmp_path, steps=2, validate=lambda: {"valid_elbo": -1.5})
    trainer.events = events
    trainer.fit()
    tags = {(tag, step) for tag, _, step in events.scalars}
    assert {("loss", 1), ("loss", 2), ("valid_elbo", 2), ("seconds", 1)} <= tags
    assert not any(tag == "step" for tag, _, _ in events.scalars)


def test_tensorboard_option_writes_real_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tasks.cli import main

    logdir = tmp_path / "tb"
    args = ["train", "draw", "--config", "small", "--dataset", "glyphs", "--steps", "3"]
    args += ["--batch-size", "8", "--num-train", "64", "--iwae-samples", "2", "--log-every", "1"]
    args += ["--eval-examples", "8", "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    assert main([*args, "--tensorboard", str(logdir)]) == 0
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    assert events.Tags()["images"]  # the run's pictures


def test_tensorboard_without_the_package_is_a_clear_error(monkeypatch):
    import builtins

    from inference.events import open_event_writer

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ValueError, match=r"pyro-draw\[tensorboard\]"):
        open_event_writer("somewhere")
