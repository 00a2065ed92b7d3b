"""The ``mathy`` command line. TensorFlow is imported inside commands only."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from . import __version__
from .config import (
    AGENTS,
    DIFFICULTIES,
    TOPIC_CHOICES,
    TOPICS,
    A3CConfig,
    ConfigError,
)

if TYPE_CHECKING:  # the agent imports TensorFlow: only inside commands at runtime
    from .agent import A3CAgent

app = typer.Typer(
    name="mathy",
    help="Train A3C agents that simplify algebra step by step on Mathy environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEFAULTS = A3CConfig()


def _help(name: str) -> str:
    return A3CConfig.help(name)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mathy-a3c {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Train A3C agents that simplify algebra step by step on Mathy environments."""


@app.command()
def train(
    agent: str = typer.Argument(..., help="Agent to train: " + ", ".join(AGENTS) + "."),
    topics: str = typer.Argument(
        ..., help="Comma-separated Mathy topics, or one gym:ENV_ID: " + TOPIC_CHOICES
    ),
    folder: str = typer.Argument(..., help="Model folder to create (or overwrite)."),
    difficulty: str | None = typer.Option(
        None, help=_help("difficulty"), show_default=False
    ),
    curriculum_window: int = typer.Option(
        _DEFAULTS.curriculum_window, help=_help("curriculum_window")
    ),
    promote_at: float = typer.Option(_DEFAULTS.promote_at, help=_help("promote_at")),
    demote_below: float = typer.Option(
        _DEFAULTS.demote_below, help=_help("demote_below")
    ),
    workers: int = typer.Option(_DEFAULTS.num_workers, help=_help("num_workers")),
    backend: str = typer.Option(_DEFAULTS.backend, help=_help("backend")),
    ray_address: str = typer.Option(
        _DEFAULTS.ray_address, help=_help("ray_address"), show_default=False
    ),
    episodes: int = typer.Option(
        _DEFAULTS.max_eps,
        help=_help("max_eps") + " Counts this run only: training into a folder "
        "that holds a model resumes it and runs this many more episodes.",
    ),
    max_seconds: float = typer.Option(_DEFAULTS.max_seconds, help=_help("max_seconds")),
    update_interval: int = typer.Option(
        _DEFAULTS.update_interval, help=_help("update_interval")
    ),
    worker_wait: float = typer.Option(_DEFAULTS.worker_wait, help=_help("worker_wait")),
    lr: float = typer.Option(_DEFAULTS.lr, help=_help("lr")),
    lr_schedule: str = typer.Option(_DEFAULTS.lr_schedule, help=_help("lr_schedule")),
    gamma: float = typer.Option(_DEFAULTS.gamma, help=_help("gamma")),
    gae_lambda: float = typer.Option(_DEFAULTS.gae_lambda, help=_help("gae_lambda")),
    entropy_coef: float = typer.Option(
        _DEFAULTS.entropy_coef, help=_help("entropy_coef")
    ),
    value_coef: float = typer.Option(_DEFAULTS.value_coef, help=_help("value_coef")),
    max_grad_norm: float = typer.Option(
        _DEFAULTS.max_grad_norm, help=_help("max_grad_norm")
    ),
    model_size: int | None = typer.Option(
        None,
        help=_help("model_size")
        + f" [default: {_DEFAULTS.model_size}, or the size saved in FOLDER]",
        show_default=False,
    ),
    transfer: str | None = typer.Option(
        None,
        help="Start from the weights of the model in this folder (a new optimizer "
        "and counters). FOLDER must not hold a model yet.",
    ),
    seed: int = typer.Option(_DEFAULTS.seed, help=_help("seed")),
    save_every: float = typer.Option(
        _DEFAULTS.save_every_s, help=_help("save_every_s")
    ),
    show: bool = typer.Option(False, "--show", help=_help("print_training")),
    profile: bool = typer.Option(False, "--profile", help=_help("profile")),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=_help("verbose")),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train an agent on Mathy TOPICS (or a gym:ENV_ID) and save it in FOLDER.

    Without --difficulty, a curriculum moves each worker between easy, normal
    and hard by its recent win rate; every move is printed. If FOLDER already
    holds a model, training resumes it (weights, optimizer state, counters,
    TensorBoard curves).

    Examples: mathy train a3c poly output/my_agent --show;
    mathy train a3c gym:CartPole-v1 output/cartpole
    """
    if agent not in AGENTS:
        raise _fail(f"Unknown agent {agent!r}. Valid agents: {', '.join(AGENTS)}")
    from .checkpoint import CheckpointError, has_checkpoint, load_config

    try:
        saved_size = load_config(folder).model_size if has_checkpoint(folder) else None
    except (CheckpointError, ConfigError) as error:
        raise _fail(str(error)) from None
    if saved_size is not None and model_size not in (None, saved_size):
        raise _fail(
            f"--model-size {model_size} contradicts the model saved in {folder} "
            f"(model_size {saved_size}); drop the flag to resume, or use a new folder"
        )
    model_size = model_size or saved_size or _DEFAULTS.model_size
    try:
        config = A3CConfig(
            topics=[topics],
            difficulty=difficulty,
            curriculum_window=curriculum_window,
            promote_at=promote_at,
            demote_below=demote_below,
            model_dir=folder,
            num_workers=workers,
            backend=backend,
            ray_address=ray_address,
            max_eps=episodes,
            max_seconds=max_seconds,
            update_interval=update_interval,
            worker_wait=worker_wait,
            lr=lr,
            lr_schedule=lr_schedule,
            gamma=gamma,
            gae_lambda=gae_lambda,
            entropy_coef=entropy_coef,
            value_coef=value_coef,
            max_grad_norm=max_grad_norm,
            model_size=model_size,
            seed=seed,
            save_every_s=save_every,
            profile=profile,
            print_training=show,
            verbose=verbose,
        )
    except ConfigError as error:
        raise _fail(str(error)) from None
    if config.is_gym:  # an unknown or non-Discrete environment, before TensorFlow
        from .gym_envs import gym_spec

        try:
            gym_spec(config.topics[0])
        except ConfigError as error:
            raise _fail(str(error)) from None
    if config.backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise _fail(
                "--backend ray needs Ray, an optional extra: "
                "pip install 'mathy-a3c[ray]'"
            )

    try:
        with _quiet_native_logs():
            from .agent import A3CAgent, WorkerError

            trainer = A3CAgent(config, progress=progress, transfer=transfer)
    except CheckpointError as error:
        raise _fail(str(error)) from None
    if trainer.resumed:
        typer.echo(
            f"Resuming {folder}: {trainer.total_episodes} episodes and "
            f"{trainer.total_steps} steps so far"
        )
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
    except WorkerError as error:
        cause = error.__cause__
        if cause is not None and not isinstance(cause, FloatingPointError):
            import traceback

            traceback.print_exception(type(cause), cause, cause.__traceback__)
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"Trained {result.episodes} episodes ({result.steps} steps, "
        f"{result.steps_per_second:.0f} steps/s, win rate {result.win_rate:.2f}) "
        f"in {result.seconds:.0f}s; model saved to {config.model_dir}"
    )
    if profile:
        typer.echo(
            f"Profiles: {config.model_dir}/worker_N.profile "
            f"(view with: snakeviz {config.model_dir}/worker_0.profile)"
        )


@app.command()
def simplify(
    problem: str = typer.Argument(..., help='The problem, e.g. "4x + 2x + 7y^2"'),
    model: str = typer.Option(..., "--model", "-m", help="A trained model folder."),
    max_steps: int | None = typer.Option(
        None, help="Stop after this many steps (default: the move budget)."
    ),
    topic: str | None = typer.Option(
        None, help="Treat the problem as this topic (default: the model's first)."
    ),
    strategy: str = typer.Option(
        "no-revisit",
        help="greedy, no-revisit (greedy, but never back to an expression already "
        "seen while another action exists) or sample.",
    ),
) -> None:
    """Simplify PROBLEM step by step with a trained model.

    Exits 0 when the result is fully simplified and 1 when it is not.
    """
    from .inference import STRATEGIES

    if strategy not in STRATEGIES:
        raise _fail(
            f"Unknown strategy {strategy!r}. Valid strategies: {', '.join(STRATEGIES)}"
        )
    if topic is not None and topic not in TOPICS:
        raise _fail(f"Unknown topic {topic!r}. Valid topics: {', '.join(TOPICS)}")
    if max_steps is not None and max_steps < 1:
        raise _fail(f"--max-steps must be >= 1; got {max_steps}")
    from mathy_core.parser import ExpressionParser

    try:
        ExpressionParser().parse(problem)  # fail fast, before TensorFlow loads
    except Exception as error:
        raise _fail(f"cannot parse problem {problem!r}: {error}") from None
    agent = _load(model)
    if agent.config.is_gym:
        raise _fail(
            f"{model} holds a model for {agent.config.topics[0]}; simplify needs "
            f"one trained on Mathy topics"
        )
    typer.echo(f"Problem: {problem}")
    count = iter(range(1, 1 << 30))
    try:
        solution = agent.simplify(
            problem,
            topic=topic,
            strategy=strategy,
            max_steps=max_steps,
            on_step=lambda step: typer.echo(
                f"  {next(count):>3} | {step.rule[:26]:<26} @{step.node:<3} | "
                f"{step.expression}"
            ),
        )
    except ValueError as error:
        raise _fail(str(error)) from None
    if solution.win:
        typer.echo(f"Simplified: {solution.final} ({len(solution.steps)} steps)")
        return
    why = f" ({solution.error})" if solution.error else ""
    typer.echo(
        f"Not simplified: {solution.final} after {len(solution.steps)} steps{why}"
    )
    raise typer.Exit(code=1)


@app.command()
def evaluate(
    folder: str = typer.Argument(..., help="A trained model folder."),
    topics: str | None = typer.Option(
        None, help="Comma-separated topics (default: the ones the model trained on)."
    ),
    difficulty: str | None = typer.Option(
        None,
        help="easy, normal or hard (default: the model's; a curriculum model: "
        "all three).",
    ),
    problems: int = typer.Option(
        200, help="Generated problems per topic and difficulty (gym: episodes)."
    ),
    seed: int = typer.Option(
        0, help="Seed of the generated problems (training never uses a bare seed)."
    ),
    problems_file: str | None = typer.Option(
        None,
        help="Also evaluate problems from this file: one per line, '#' comments, "
        "'# group: NAME' lines start a group.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Win rates of a trained model: greedy, no-revisit and random play."""

    from .checkpoint import CheckpointError, load_config

    try:
        saved = load_config(folder)
        config = saved.replace(
            topics=[topics] if topics else saved.topics,
            difficulty=difficulty or saved.difficulty,
        )
    except (CheckpointError, ConfigError) as error:
        raise _fail(str(error)) from None
    if problems < 1:
        raise _fail(f"--problems must be >= 1; got {problems}")
    if seed < 0:
        raise _fail(f"--seed must be >= 0; got {seed}")
    from .evaluation import (
        evaluate as run,
    )
    from .evaluation import (
        generated_states,
        read_problems,
        typed_states,
    )

    if config.is_gym:
        _evaluate_gym(folder, config.topics[0], problems, seed, as_json)
        return
    # A curriculum model is measured at every difficulty it may have played.
    levels = [config.difficulty] if config.difficulty else list(DIFFICULTIES)
    sets: list[tuple[str, str, str, list]] = []  # (topic, level, label, states)
    for topic in config.topics:
        for level in levels:
            states = generated_states(topic, level, problems, seed)
            sets.append((topic, level, f"generated {level}", states))
    if problems_file is not None:
        try:
            written = read_problems(problems_file)
            for group in dict.fromkeys(g for g, _ in written):
                texts = [t for g, t in written if g == group]
                topic = config.topics[0]
                states = typed_states(topic, texts, levels[0])
                sets.append((topic, levels[0], f"file: {group}", states))
        except (OSError, ValueError) as error:
            raise _fail(f"--problems-file {problems_file}: {error}") from None
    agent = _load(folder)
    rows = []
    for topic, level, label, states in sets:
        greedy = run(topic, states, agent.network.predict, "greedy", level)
        safe = run(topic, states, agent.network.predict, "no-revisit", level)
        rand = run(topic, states, None, difficulty=level, seed=seed)
        rows.append(
            {
                "topic": topic,
                "set": label,
                "problems": greedy.problems,
                "greedy_win_rate": round(greedy.win_rate, 4),
                "no_revisit_win_rate": round(safe.win_rate, 4),
                "greedy_mean_steps": round(greedy.mean_steps, 2),
                "random_win_rate": round(rand.win_rate, 4),
            }
        )
    columns = [
        ("topic", "topic", "<26"),
        ("set", "set", "<36"),
        ("problems", "problems", ">8"),
        ("greedy_win_rate", "greedy", ">7.3f"),
        ("no_revisit_win_rate", "no-revisit", ">10.3f"),
        ("greedy_mean_steps", "steps", ">6.2f"),
        ("random_win_rate", "random", ">7.3f"),
    ]
    _print_results(folder, seed, rows, columns, as_json)


def _evaluate_gym(
    folder: str, topic: str, episodes: int, seed: int, as_json: bool
) -> None:
    """Mean return of the greedy policy and of random valid actions."""

    from .evaluation import gym_returns

    agent = _load(folder)
    rows = []
    for policy, act in (
        ("greedy", agent.network.numpy_actor()),
        ("random", None),
    ):
        stats = gym_returns(topic, act, episodes=episodes, seed=seed)
        rows.append(
            {
                "topic": topic,
                "policy": policy,
                "episodes": stats.episodes,
                "mean_return": round(stats.mean_return, 3),
                "std_return": round(stats.std_return, 3),
                "win_rate": round(stats.win_rate, 4),
                "mean_steps": round(stats.mean_steps, 2),
            }
        )
    columns = [
        ("topic", "topic", "<26"),
        ("policy", "policy", "<8"),
        ("episodes", "episodes", ">8"),
        ("mean_return", "mean return", ">12.2f"),
        ("std_return", "std", ">8.2f"),
        ("win_rate", "win rate", ">8.3f"),
        ("mean_steps", "steps", ">7.1f"),
    ]
    _print_results(folder, seed, rows, columns, as_json)


def _print_results(
    folder: str,
    seed: int,
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str, str]],
    as_json: bool,
) -> None:
    """``evaluate``'s output: one JSON object, or a table of ``rows`` whose
    ``columns`` are (key, title, format spec)."""
    if as_json:
        import json

        typer.echo(json.dumps({"model": folder, "seed": seed, "results": rows}))
        return
    header = " ".join(f"{title:{spec.split('.')[0]}}" for _, title, spec in columns)
    typer.echo(header)
    typer.echo("-" * len(header))
    for r in rows:
        typer.echo(" ".join(f"{r[key]:{spec}}" for key, _, spec in columns))


@app.command()
def problems(
    topic: str = typer.Argument(..., help="A topic: " + ", ".join(TOPICS) + "."),
    difficulty: str = typer.Option("easy", help="easy, normal or hard."),
    number: int = typer.Option(10, help="How many problems to print."),
    seed: int = typer.Option(0, help="Seed of the problem generator."),
) -> None:
    """Print generated problems of TOPIC with their complexity."""
    if topic not in TOPICS:
        raise _fail(f"Unknown topic {topic!r}. Valid topics: {', '.join(TOPICS)}")
    if difficulty not in DIFFICULTIES:
        raise _fail(
            f"difficulty must be one of {', '.join(DIFFICULTIES)}; got {difficulty!r}"
        )
    if number < 1:
        raise _fail(f"--number must be >= 1; got {number}")
    from .envs import MathyTask

    task = MathyTask([topic], difficulty, seed=seed)
    typer.echo(f"{'complexity':>10}  {'moves':>5}  problem")
    for _ in range(number):
        task.reset()
        assert task.state is not None
        complexity = task.last_complexity
        typer.echo(f"{complexity:>10}  {task.state.max_moves:>5}  {task.problem}")


def _load(folder: str) -> A3CAgent:
    """The trained agent in ``folder``, or a one-line error and exit code 2."""
    from .checkpoint import CheckpointError

    try:
        with _quiet_native_logs():
            from .agent import A3CAgent

            return A3CAgent.load(folder)
    except (CheckpointError, ConfigError) as error:
        raise _fail(str(error)) from None


@contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Hide TensorFlow's C++ start-up chatter (CUDA probing, CPU features).

    It is written straight to file descriptor 2 while TensorFlow loads, before
    any logging setting applies. Python exceptions raised inside still reach
    the user: they are printed after stderr is restored. Set
    ``MATHY_A3C_TF_LOGS=1`` to see the native logs.
    """
    if os.environ.get("MATHY_A3C_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
