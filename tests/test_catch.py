"""RAM playing Catch (Mnih et al. 2014, sec. 4.2): the game's rules (tasks/catch.py), the agent
as a Pyro program (generative/catch_agent.py) and its REINFORCE training."""

from __future__ import annotations

import json

import pyro.poutine as poutine
import pytest
import torch

from generative.catch_agent import (
    CatchAgent,
    CatchAgentConfig,
    GreedyPolicy,
)
from generative.catch_game import (
    LEFT,
    RIGHT,
    STAY,
    CatchEnv,
    CatchState,
    all_starts,
    random_policy_catch_rate,
)
from guides.empty import EmptyGuide
from inference.catch import CatchObjective
from inference.trainer import SVITrainer, TrainConfig
from tasks.catch import FAMILY
from tasks.catch.models import build_agent
from tasks.catch.pictures import episode_filmstrip
from tasks.catch.play import greedy_catch_rate, play, play_episode
from tasks.catch.training import CatchBatches
from tasks.cli import build_parser, main
from tasks.families import find_model, load_trained

SIZE, WIDTH = 24, 2
# A small agent for speed (the paper's is CatchAgentConfig()).
TINY = CatchAgentConfig(
    glimpse_hidden=16, location_hidden=16, glimpse_output=32, core_size=32, location_std=0.2
)


def one_game(row: int, col: int, vx: int, paddle: int) -> CatchState:
    return CatchState(*(torch.tensor([v]) for v in (row, col, vx, paddle)))


def env_at(state: CatchState, size: int = SIZE) -> CatchEnv:
    env = CatchEnv(state.ball_row.shape[0], size, WIDTH)
    env.reset(state)
    return env


def actions(*values: int) -> torch.Tensor:
    return torch.tensor(values)


# ============================================================================ rules
def test_reset_rule_1_start_distribution() -> None:
    env = CatchEnv(3000, generator=torch.Generator().manual_seed(0))
    screen = env.reset()
    s = env.state
    assert screen.shape == (3000, 1, SIZE, SIZE) and screen.dtype == torch.float32
    assert (s.ball_row == 0).all() and (s.paddle == 11).all()  # paddle on columns 11–12
    assert set(s.ball_col.tolist()) == set(range(SIZE))
    assert set(s.ball_vx.tolist()) == {-1, 0, 1}
    # one ball pixel on the top row, two paddle pixels on the bottom row, nothing else
    assert (screen.sum((1, 2, 3)) == 3).all()
    assert (screen[:, 0, 0].argmax(-1) == s.ball_col).all()
    assert (screen[:, 0, -1, 11:13] == 1).all()


@pytest.mark.parametrize(
    ("col", "vx", "new_col", "new_vx"),
    [
        (1, -1, 0, -1),  # reaches the left wall column ...
        (0, -1, 1, 1),  # ... and bounces back (mirror: column −1 → 1)
        (22, 1, 23, 1),  # right wall column
        (23, 1, 22, -1),  # bounce (column 24 → 22)
        (0, 0, 0, 0),  # falling straight along the wall: no bounce
        (10, 1, 11, 1),
    ],
)
def test_ball_falls_one_row_and_bounces_off_the_side_walls(col, vx, new_col, new_vx) -> None:
    env = env_at(one_game(5, col, vx, 3))
    screen, reward, done = env.step(actions(STAY))
    assert env.state.ball_row.item() == 6
    assert (env.state.ball_col.item(), env.state.ball_vx.item()) == (new_col, new_vx)
    assert screen[0, 0, 6, new_col] == 1 and screen[0, 0, 5].sum() == 0
    assert reward.item() == 0 and not done.item()


def test_a_diagonal_ball_zigzags_between_the_walls() -> None:
    size = 6  # episodes of size − 1 = 5 steps
    for col, vx, path in [(2, -1, [2, 1, 0, 1, 2, 3]), (3, 1, [3, 4, 5, 4, 3, 2])]:
        env = env_at(one_game(0, col, vx, 2), size=size)
        cols = [col]
        while not env.done:
            env.step(actions(STAY))
            cols.append(env.state.ball_col.item())
        assert cols == path


@pytest.mark.parametrize(
    ("paddle", "action", "moved"),
    [(11, LEFT, 10), (11, STAY, 11), (11, RIGHT, 12), (0, LEFT, 0), (22, RIGHT, 22)],
)
def test_paddle_moves_one_column_and_stays_on_screen(paddle, action, moved) -> None:
    env = env_at(one_game(3, 5, 0, paddle))
    screen, _, _ = env.step(actions(action))
    assert env.state.paddle.item() == moved
    assert screen[0, 0, -1].nonzero().flatten().tolist() == [moved, moved + 1]


@pytest.mark.parametrize(
    ("col", "vx", "paddle", "action", "reward"),
    [
        (12, 0, 11, STAY, 1.0),  # lands on the paddle's right pixel
        (11, 0, 11, STAY, 1.0),  # left pixel
        (13, 0, 11, STAY, 0.0),  # just right of the paddle
        (10, 0, 11, STAY, 0.0),  # just left of it
        (13, 0, 11, RIGHT, 1.0),  # the paddle moves before the check
        (12, 1, 11, RIGHT, 1.0),  # the ball moves diagonally onto the moved paddle (13)
        (0, -1, 0, STAY, 1.0),  # bounce on the last step: lands on column 1
        (0, -1, 2, STAY, 0.0),  # the same bounce misses the paddle on columns 2–3
        (0, -1, 2, LEFT, 1.0),  # ... unless it moves onto columns 1–2
    ],
)
def test_reward_is_1_for_a_catch_and_0_for_a_miss(col, vx, paddle, action, reward) -> None:
    env = env_at(one_game(SIZE - 2, col, vx, paddle))
    screen, r, done = env.step(actions(action))
    assert done.item() and env.done
    assert r.item() == reward
    assert screen[0, 0, -1].sum() == (2 if reward else 3)  # a caught ball hides in the paddle


def test_episode_length_and_rewards_only_at_the_end() -> None:
    gen = torch.Generator().manual_seed(3)
    env = CatchEnv(50, generator=gen)
    env.reset()
    assert env.episode_length == env.remaining_steps == SIZE - 1
    for t in range(1, SIZE):
        _, reward, done = env.step(torch.randint(3, (50,), generator=gen))
        assert done.all().item() == (t == SIZE - 1)
        if t < SIZE - 1:
            assert (reward == 0).all()
    assert env.done and (env.state.ball_row == SIZE - 1).all()
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(torch.ones(50, dtype=torch.long))
    env.reset()
    assert not env.done


def test_determinism_given_the_seed() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        env = CatchEnv(8, generator=gen)
        screens = [env.reset()]
        while not env.done:
            screen, reward, _ = env.step(torch.randint(3, (8,), generator=gen))
            screens.append(screen)
        return [*screens, reward]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def _reference_game(col: int, vx: int, moves: list[int], size: int = SIZE, width: int = WIDTH):
    """The rules of the module docstring written out for one game with plain integers."""
    row, paddle = 0, (size - width) // 2
    frames, rewards = [], []
    for a in moves:
        paddle = min(max(paddle + a - 1, 0), size - width)
        row, col = row + 1, col + vx
        if col < 0 or col > size - 1:
            col, vx = (-col if col < 0 else 2 * (size - 1) - col), -vx
        screen = torch.zeros(size, size)
        screen[row, col] = 1
        screen[size - 1, paddle : paddle + width] = 1
        frames.append(screen)
        rewards.append(float(row == size - 1 and paddle <= col < paddle + width))
    return frames, rewards


def test_batch_vectorisation_equals_per_game_loops() -> None:
    gen = torch.Generator().manual_seed(11)
    batch = 40
    env = CatchEnv(batch, generator=gen)
    env.reset()
    start = env.state
    moves = torch.randint(3, (SIZE - 1, batch), generator=gen)
    frames, rewards = [], []
    for t in range(SIZE - 1):
        screen, reward, _ = env.step(moves[t])
        frames.append(screen[:, 0])
        rewards.append(reward)
    for b in range(batch):
        ref_frames, ref_rewards = _reference_game(
            start.ball_col[b].item(), start.ball_vx[b].item(), moves[:, b].tolist()
        )
        assert all(torch.equal(f[b], r) for f, r in zip(frames, ref_frames, strict=True))
        assert [r[b].item() for r in rewards] == ref_rewards


def test_random_policy_rate_is_exact() -> None:
    exact = random_policy_catch_rate()
    # landing columns are uniform, so a paddle that ignores the ball catches 2 of 24
    assert exact == pytest.approx(2 / 24, abs=1e-12)
    gen = torch.Generator().manual_seed(0)
    n = 8_000
    env = CatchEnv(n, generator=gen)
    env.reset()
    while not env.done:
        _, reward, _ = env.step(torch.randint(3, (n,), generator=gen))
    stderr = (exact * (1 - exact) / n) ** 0.5
    assert abs(reward.mean().item() - exact) < 4 * stderr


def test_every_game_is_winnable() -> None:
    """A policy told the landing column catches all 3·24 distinct games."""
    start = all_starts()
    assert len(set(zip(start.ball_col.tolist(), start.ball_vx.tolist(), strict=True))) == 72
    probe = env_at(start)
    while not probe.done:
        probe.step(torch.full((72,), STAY))
    landing = probe.state.ball_col
    env = env_at(start)
    while not env.done:
        diff = landing - env.state.paddle  # want 0 or 1
        move = torch.where(diff < 0, LEFT, torch.where(diff > 1, RIGHT, STAY))
        _, reward, _ = env.step(move)
    assert (reward == 1).all()


def test_bad_input_is_rejected_with_the_field_named() -> None:
    env = CatchEnv(2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.ones(2, dtype=torch.long))
    env.reset()
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="state.paddle"):
        env.reset(CatchState(*(torch.tensor([0, 0]),) * 3, torch.tensor([0, 23])))
    with pytest.raises(ValueError, match="paddle_width"):
        CatchEnv(2, size=24, paddle_width=24)


# ============================================================================ the agent
def test_agent_trace_has_action_and_location_sites() -> None:
    torch.manual_seed(0)
    agent = CatchAgent(TINY)
    env = CatchEnv(5, generator=torch.Generator().manual_seed(0))
    env.reset()
    trace = poutine.trace(agent.model).get_trace(env)
    latent = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "games"]
    steps = SIZE - 1
    expected = [f"a_{t}" for t in range(1, steps + 1)] + [f"l_{t}" for t in range(1, steps)]
    assert sorted(latent) == sorted(expected)
    for name in latent:
        site = trace.nodes[name]
        assert not site["is_observed"]
        assert [f.name for f in site["cond_indep_stack"]] == ["games"]
        assert site["infer"]["baseline"]["baseline_value"].shape == (5,)
        assert not site["fn"].has_rsample and not site["value"].requires_grad
    assert trace.nodes["a_1"]["value"].shape == (5,)
    assert trace.nodes["l_1"]["value"].shape == (5, 2)
    episode = trace.nodes["_RETURN"]["value"]
    assert episode.actions.shape == (steps, 5) and episode.baselines.shape == (steps, 5)
    assert episode.screens.shape == (steps + 1, 5, 1, SIZE, SIZE)
    assert torch.equal(episode.locations[0], torch.zeros(5, 2))  # l_0 = the centre
    assert torch.equal(episode.locations[1], trace.nodes["l_1"]["value"].clamp(-1, 1))
    assert torch.equal(episode.actions[0], trace.nodes["a_1"]["value"])
    assert env.done and episode.reward.shape == (5,)


def test_greedy_policy_plays_the_mode_deterministically() -> None:
    torch.manual_seed(1)
    agent = CatchAgent(TINY)
    runs = []
    for _ in range(2):
        env = CatchEnv(6, generator=torch.Generator().manual_seed(2))
        env.reset()
        trace = poutine.trace(GreedyPolicy()(agent.model)).get_trace(env)
        runs.append(trace)
    for t in (1, 5):
        a, loc = runs[0].nodes[f"a_{t}"], runs[0].nodes[f"l_{t}"]
        assert torch.equal(a["value"], a["fn"].logits.argmax(-1))
        assert torch.equal(loc["value"], loc["fn"].mean)
        assert torch.equal(a["value"], runs[1].nodes[f"a_{t}"]["value"])


def test_play_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(2)
    agent = CatchAgent(TINY)
    before = torch.get_rng_state()
    rates = [play(agent, 60, seed=5, greedy=False, batch_size=25) for _ in range(2)]
    assert torch.equal(before, torch.get_rng_state())
    assert rates[0] == rates[1] and 0.0 <= rates[0] <= 1.0
    assert play(agent, 60, seed=5, greedy=True) == play(agent, 60, seed=5, greedy=True)


def test_greedy_catch_rate_is_exact_over_the_72_games() -> None:
    torch.manual_seed(9)
    agent = CatchAgent(TINY)
    rate = greedy_catch_rate(agent)
    start = all_starts()
    order = torch.randperm(72)
    env = env_at(CatchState(*(v[order] for v in start)))
    episode, _ = play_episode(agent, env, greedy=True)  # the same games in another batch order
    assert rate == pytest.approx(episode.reward.mean().item())
    assert rate * 72 == pytest.approx(round(rate * 72))


def test_baseline_learns_without_touching_the_policy() -> None:
    torch.manual_seed(3)
    agent = CatchAgent(TINY)
    env = CatchEnv(4, generator=torch.Generator().manual_seed(0))
    env.reset()
    episode = agent.model(env)
    from inference.reinforce import baseline_loss

    baseline_loss(episode.reward, episode.baselines).backward()
    assert agent.baseline.weight.grad is not None and agent.baseline.weight.grad.abs().sum() > 0
    for name, p in agent.named_parameters():
        if not name.startswith("baseline."):
            assert p.grad is None, name


# ============================================================================ training
def _trainer(tmp_path, agent, guide, steps: int, batch: int = 8, seed: int = 0) -> SVITrainer:
    config = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=1e-3,
        seed=seed,
        log_every=1,
        validate_every=10**6,
        checkpoint_every=10**6,
    )
    return SVITrainer(
        agent,
        guide,
        CatchBatches(batch, seed=seed),
        config,
        out_dir=tmp_path,
        checkpoint_extra={"model": "ram-catch", "model_config": agent.config.to_dict()},
        progress=False,
        objective=CatchObjective(),
    )


def test_one_training_step_changes_parameters_and_the_loss_is_finite(tmp_path) -> None:
    torch.manual_seed(4)
    agent, guide = build_agent(TINY.to_dict())
    assert isinstance(guide, EmptyGuide)
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    trainer = _trainer(tmp_path, agent, guide, steps=1)
    trainer.fit()
    record = trainer.state.history[-1]
    assert torch.isfinite(torch.tensor(record["loss"]))
    assert 0.0 <= record["catch_rate"] <= 1.0 and record["baseline_mse"] >= 0
    for name in ("actor.weight", "locator.linear.weight", "core.weight_ih", "baseline.weight"):
        assert not torch.equal(before[name], dict(agent.named_parameters())[name]), name
    loaded, _, ckpt = load_trained(tmp_path / "checkpoint.pt")
    assert ckpt.step == 1
    for name, p in agent.state_dict().items():
        assert torch.equal(p, loaded.state_dict()[name])


def test_training_resumes_exactly(tmp_path) -> None:
    torch.manual_seed(5)
    straight, guide = build_agent(TINY.to_dict())
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    _trainer(tmp_path / "a", straight, guide, steps=2).fit()
    first, guide2 = build_agent(TINY.to_dict())
    first.load_state_dict(init)
    _trainer(tmp_path / "b", first, guide2, steps=1).fit()
    resumed, guide3 = build_agent(TINY.to_dict())
    trainer = _trainer(tmp_path / "c", resumed, guide3, steps=2)
    trainer.resume(tmp_path / "b" / "checkpoint.pt")
    trainer.fit()
    for name, p in straight.state_dict().items():
        assert torch.allclose(p, resumed.state_dict()[name], atol=1e-6), name


def test_batches_are_a_deterministic_function_of_the_step() -> None:
    batches = CatchBatches(16, seed=3)
    a, b = batches.batch(7), batches.batch(7)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(batches.batch(8)[1], a[1])
    assert (a[0] == 0).all() and (a[3] == 11).all()


def test_reinforce_pushes_the_policy_towards_the_catching_action() -> None:
    """One step before the end, the ball falls onto column 13 and the paddle covers 11–12: only
    "right" catches it. REINFORCE from the final reward must make "right" more probable."""
    torch.manual_seed(6)
    agent = CatchAgent(TINY)
    batch = 128
    state = CatchState(*(torch.full((batch,), v) for v in (SIZE - 2, 13, 0, 11)))
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2)
    objective = CatchObjective()

    def p_right() -> float:
        env = env_at(state)
        with torch.no_grad():
            h, _ = agent.core_step(env.observe(), torch.zeros(batch, 2), agent.initial_state(batch))
            return agent.action_distribution(h).probs[:, RIGHT].mean().item()

    start = p_right()
    rates = []
    for _ in range(15):
        optimizer.zero_grad()
        loss, metrics = objective(agent, EmptyGuide(), tuple(state), 0)
        loss.backward()
        optimizer.step()
        rates.append(metrics["catch_rate"])
    assert p_right() > max(start + 0.3, 0.7)
    assert rates[-1] > rates[0]


# ============================================================================ pictures and CLI
def test_filmstrip_draws_the_retina_boxes() -> None:
    torch.manual_seed(7)
    agent = CatchAgent(TINY)
    env = CatchEnv(2, generator=torch.Generator().manual_seed(0))
    env.reset()
    episode, _ = play_episode(agent, env, greedy=True)
    frames = episode_filmstrip(episode, 1, glimpse_size=6, scales=3, zoom=4)
    assert frames.shape == (SIZE, 3, 4 * SIZE, 4 * SIZE)
    # frame 0 senses l_0 = centre: the 6×6 patch covers pixels 9–14, i.e. zoomed 36 … 59
    red = (frames[0, 0] == 1) & (frames[0, 1] == 0)
    assert red[36, 36:60].all() and red[59, 36:60].all() and red[36:60, 36].all()
    assert not red[35].any()
    # the last frame (after the final action) has no glimpse box: only the white game pixels
    last = frames[-1]
    assert torch.equal(last[0], last[1]) and torch.equal(last[1], last[2])


def test_cli_registration_and_checkpoint_commands(tmp_path) -> None:
    args = build_parser().parse_args(
        ["train", "ram-catch", "--steps", "3", "--location-std", "0.2", "--location-lr", "1e-4"]
    )
    assert find_model(args.model)[0] is FAMILY and args.steps == 3 and args.location_std == 0.2
    assert args.location_lr == 1e-4
    assert set(FAMILY.commands) == {"evaluate", "sample"}

    torch.manual_seed(8)
    agent, guide = build_agent(TINY.to_dict())
    _trainer(tmp_path, agent, guide, steps=1).fit()
    checkpoint = str(tmp_path / "checkpoint.pt")
    assert main(["evaluate", checkpoint, "--num-examples", "40", "--seed", "0"]) == 0
    result = json.loads((tmp_path / "eval_catch.json").read_text())
    assert result["num_games"] == 40 and result["greedy_games"] == 72
    assert 0 <= result["catch_rate_greedy"] <= 1 and 0 <= result["catch_rate_sampled"] <= 1
    assert result["random_policy_catch_rate"] == pytest.approx(random_policy_catch_rate())
    assert main(["sample", checkpoint, "--seed", "0", "--out", str(tmp_path / "pics")]) == 0
    assert (tmp_path / "pics" / "catch_episode_seed0.png").stat().st_size > 0


def test_training_through_the_cli_and_resume_with_other_settings_refused(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "ram-catch", "--out", str(out), "--batch-size", "4", "--eval-games", "10"]
    base += ["--validate-every", "1", "--checkpoint-every", "2", "--no-progress", "--threads", "1"]
    assert main([*base, "--steps", "2", "--location-lr", "1e-4"]) == 0
    assert "catch rate: greedy" in capsys.readouterr().out
    result = json.loads((out / "eval.json").read_text())
    assert result["step"] == 2 and result["num_games"] == 10 and result["frames"] == 2 * 4 * 23
    assert result["greedy_games"] == 72 and (out / "catch_episode.png").is_file()
    ckpt = str(out / "checkpoint.pt")
    resume = [*base, "--steps", "3", "--resume", ckpt, "--no-pictures"]
    assert main(resume) == 1  # trained with --location-lr 1e-4
    assert "--location-lr" in capsys.readouterr().err
    assert main([*resume, "--location-lr", "1e-4", "--location-std", "0.3"]) == 1
    assert "--location-std" in capsys.readouterr().err
    assert main([*resume, "--location-lr", "1e-4"]) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    # a new run into a folder that holds one is refused before any work, unless --overwrite
    before = (out / "checkpoint.pt").read_bytes(), (out / "metrics.jsonl").read_text()
    assert main([*base, "--steps", "2", "--no-pictures"]) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert ((out / "checkpoint.pt").read_bytes(), (out / "metrics.jsonl").read_text()) == before
    assert main([*base, "--steps", "1", "--no-pictures", "--overwrite"]) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [1, 1]  # the new run's training and validation rows


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--steps", "0", "expected a number > 0"),
        ("--batch-size", "0", "expected a number > 0"),
        ("--eval-games", "0", "expected a number > 0"),
        ("--location-std", "-0.1", "expected a number > 0"),
        ("--location-lr", "0", "expected a number > 0"),
        ("--config", "huge", "invalid choice"),
        ("--dataset", "mnist", "unrecognized arguments"),  # Catch has no dataset
    ],
)
def test_bad_train_values_are_refused_at_parse_time(option, value, message, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "ram-catch", option, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_options_are_checked_in_python_too() -> None:
    from tasks.catch.models import CatchOptions

    with pytest.raises(ValueError, match="--eval-games"):
        CatchOptions(eval_games=0)


def test_options_of_other_models_are_refused_for_catch_checkpoints(tmp_path, capsys) -> None:
    torch.manual_seed(8)
    agent, guide = build_agent(TINY.to_dict())
    _trainer(tmp_path, agent, guide, steps=1).fit()
    checkpoint = str(tmp_path / "checkpoint.pt")
    assert main(["evaluate", checkpoint, "--split", "valid"]) == 1
    assert "--split does not apply to `evaluate` of 'ram-catch'" in capsys.readouterr().err
    assert main(["sample", checkpoint, "--num-sequences", "2"]) == 1
    assert "--num-sequences does not apply to `sample` of 'ram-catch'" in capsys.readouterr().err
    assert main(["reconstruct", checkpoint]) == 1
    assert "`reconstruct` is not available for 'ram-catch'" in capsys.readouterr().err


@pytest.mark.slow
def test_training_learns_a_small_full_view_game(tmp_path) -> None:
    """End to end through the trainer: on an 8×8 screen always seen whole (one 16×16 retina
    scale, so no glimpse location can lose sight of the ball), 600 steps of REINFORCE from the
    final reward lift the greedy catch rate well above the chance rate 2/8 (~30 s on one core).
    """
    torch.manual_seed(0)
    config = CatchAgentConfig(
        screen_size=8,
        glimpse_size=16,
        scales=1,
        glimpse_hidden=64,
        location_hidden=64,
        glimpse_output=64,
        core_size=64,
    )
    agent, guide = build_agent(config.to_dict())
    assert greedy_catch_rate(agent) < 0.45
    train = TrainConfig(
        steps=600,
        batch_size=64,
        lr=1e-3,  # 3e-3 learns faster but can collapse to one action
        log_every=100,
        validate_every=10**6,
        checkpoint_every=10**6,
    )
    SVITrainer(
        agent,
        guide,
        CatchBatches(64, size=8),
        train,
        out_dir=tmp_path,
        checkpoint_extra={"model": "ram-catch", "model_config": config.to_dict()},
        progress=False,
        objective=CatchObjective(),
    ).fit()
    assert random_policy_catch_rate(8) == pytest.approx(0.25)
    assert greedy_catch_rate(agent) > 0.45


# ============================================================================ curriculum
def test_ball_locations_put_the_retina_centre_on_the_ball() -> None:
    from generative.glimpse import glimpse_centres

    env = env_at(
        CatchState(*(torch.tensor(v) for v in ([0, 0, 0], [0, 7, 23], [1, 0, -1], [11] * 3)))
    )
    for _ in range(5):
        centres = glimpse_centres(env.ball_locations(), SIZE, SIZE)
        expected = torch.stack([env.state.ball_col, env.state.ball_row], -1).float()
        torch.testing.assert_close(centres, expected, check_dtype=False)
        env.step(actions(1, 1, 1))


def test_teacher_games_sense_the_ball_and_mask_their_location_terms() -> None:
    torch.manual_seed(1)
    agent = CatchAgent(TINY)
    starts = all_starts()
    teacher = torch.arange(len(starts.ball_col)) % 2 == 0
    env = env_at(starts)
    balls = []
    trace = poutine.trace(agent.model).get_trace(env, teacher)
    episode = trace.nodes["_RETURN"]["value"]
    replay = env_at(starts)
    for t in range(episode.actions.shape[0]):
        balls.append(replay.ball_locations())
        replay.step(episode.actions[t])
    balls = torch.stack(balls)  # (T, B, 2): the ball in x_t
    torch.testing.assert_close(episode.locations[:, teacher], balls[:, teacher])
    assert not torch.allclose(episode.locations[1:, ~teacher], balls[1:, ~teacher])
    trace.compute_log_prob()
    for t in range(1, episode.actions.shape[0]):
        lp = trace.nodes[f"l_{t}"]["log_prob"]
        assert (lp[teacher] == 0).all() and (lp[~teacher] != 0).all()
        assert (trace.nodes[f"a_{t}"]["log_prob"] != 0).all()  # every game's actions learn
    assert episode.location_logits.shape == (episode.actions.shape[0] - 1, len(teacher), 2)
    noisy = agent.model(env_at(starts), teacher, 0.2)  # the taught retina near the ball
    offset = (noisy.locations - noisy.balls)[:, teacher]
    assert 0.1 < offset.abs().mean() < 0.3 and noisy.locations.abs().max() <= 1


def test_teacher_schedule_holds_then_anneals_and_is_part_of_the_batch() -> None:
    batches = CatchBatches(10, teacher_frames=230 * 4, teacher_anneal_frames=230 * 10)
    assert batches.frames_per_step == 230
    probs = [batches.teacher_probability(s) for s in (0, 3, 4, 9, 14, 20)]
    assert probs == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0, 0.0])
    teacher = batches.batch(0)[4]
    assert teacher.dtype == torch.bool and teacher.all()
    assert not batches.batch(20)[4].any()
    assert torch.equal(
        batches.batch(9)[4],
        CatchBatches(10, teacher_frames=920, teacher_anneal_frames=2300).batch(9)[4],
    )
    assert len(CatchBatches(10).batch(0)) == 4  # the paper: no mask
    with pytest.raises(ValueError, match="teacher_frames"):
        CatchBatches(10, teacher_frames=-1)
    loss, metrics = CatchObjective()(CatchAgent(TINY), EmptyGuide(), batches.batch(9), 9)
    assert 0 < metrics["teacher"] < 1 and 0 <= metrics["location_saturated"] <= 1
    assert torch.isfinite(loss)


def test_location_penalty_pulls_the_pre_tanh_mean_to_zero() -> None:
    torch.manual_seed(2)
    agent = CatchAgent(TINY)
    with torch.no_grad():
        agent.locator.linear.bias.fill_(3.0)  # a saturated mean
    games = tuple(all_starts())
    grads = {}
    for penalty in (0.0, 1.0):
        agent.zero_grad()
        torch.manual_seed(3)
        loss, metrics = CatchObjective(location_penalty=penalty)(agent, EmptyGuide(), games, 0)
        loss.backward()
        grads[penalty] = agent.locator.linear.bias.grad.clone()
    assert metrics["location_saturated"] > 0.9
    # at a saturated mean REINFORCE barely moves the bias; the penalty's gradient is
    # mean_{t,b} 2·λ·a ≈ 2 · 3 per coordinate
    assert grads[0.0].abs().max() < 0.05
    torch.testing.assert_close(grads[1.0] - grads[0.0], torch.full((2,), 6.0), atol=0.3, rtol=0)
    with pytest.raises(ValueError, match="location_penalty"):
        CatchObjective(location_penalty=-1)


def test_teacher_imitation_regresses_the_location_mean_onto_the_ball() -> None:
    from inference.catch import imitation_loss

    torch.manual_seed(4)
    agent = CatchAgent(TINY)
    games = tuple(all_starts())
    teacher = torch.ones(len(games[0]), dtype=torch.bool)
    episode = poutine.trace(agent.model).get_trace(env_at(CatchState(*games)), teacher)
    episode = episode.nodes["_RETURN"]["value"]
    mean = torch.tanh(episode.location_logits)
    torch.testing.assert_close(agent.locator(episode.core_states), mean)
    assert episode.core_states.requires_grad  # the regression also trains the core
    torch.testing.assert_close(episode.balls, episode.locations)  # taught: the retina on it
    expected = (mean - episode.locations[1:]).pow(2).sum(-1).mean()
    torch.testing.assert_close(imitation_loss(agent, episode), expected)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3)
    objective = CatchObjective(teacher_imitation=10.0)
    before = imitation_loss(agent, episode).item()
    for step in range(150):
        optimizer.zero_grad()
        loss, _ = objective(agent, EmptyGuide(), (*games, teacher), step)
        loss.backward()
        optimizer.step()
    episode = poutine.trace(agent.model).get_trace(env_at(CatchState(*games)), teacher)
    after = imitation_loss(agent, episode.nodes["_RETURN"]["value"]).item()
    assert after < 0.7 * before
    schedule = CatchBatches(4, teacher_frames=0, teacher_anneal_frames=920).teacher_probability
    annealed = CatchObjective(teacher_imitation=2.0, teacher_schedule=schedule)
    assert [annealed.imitation_weight(s) for s in (0, 5, 10)] == pytest.approx([2.0, 1.0, 0.0])
