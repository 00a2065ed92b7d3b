"""The ``mathy`` command line. TensorFlow is imported inside commands only.

``mathy train``'s options are generated from :class:`~mathy_a3c.config.A3CConfig`:
every field is an option (``--field-name``, or the ``flag`` its metadata
names) with the field's help text and default, so a new field appears in
``mathy train --help`` without touching this file.

Every mistake a user can make is one line on stderr, ``Error: ...``, naming
the flag they typed, and exit code 2; nothing is written before it is found.
Exit codes: 0 done, 1 a worker failed or the final save failed (the last good
checkpoint is kept), 2 bad input, 130 Ctrl-C, 143 SIGTERM (both save first).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from . import __version__
from .config import (
    AGENTS,
    DEFAULT_SIMULATIONS,
    DIFFICULTIES,
    MAX_SEED,
    MAX_SIMULATIONS,
    SEARCHES,
    TOPICS,
    A3CConfig,
    ConfigError,
)
from .quiet import quiet_native_logs

if TYPE_CHECKING:  # the agent imports TensorFlow: only inside commands at runtime
    from .agent import A3CAgent
    from .config import SettingChange

_DEFAULTS = A3CConfig()
#: Bounds on the counts the model commands take.
MAX_PROBLEMS = 100_000
MAX_STEPS = 10_000


class _Mathy(click.Group):
    """The command group: a usage error is one line, and Ctrl-C exits 130."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as error:
            click.echo(f"Error: {_one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort as error:
            if isinstance(error.__context__, KeyboardInterrupt):
                click.echo("Interrupted", err=True)
                sys.exit(130)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str) -> NoReturn:
    """Stop with one line on stderr and exit code 2."""
    raise click.UsageError(message)


@click.group(cls=_Mathy, invoke_without_command=True)
@click.version_option(
    __version__, prog_name="mathy-a3c", message="%(prog)s %(version)s"
)
@click.pass_context
def app(ctx: click.Context) -> None:
    """Train A3C agents that simplify algebra step by step on Mathy environments."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# -- mathy train ---------------------------------------------------------------
def flag(name: str) -> str:
    """How ``mathy train`` spells config field ``name``: its option, or the
    argument (TOPICS, FOLDER) that sets it."""
    meta = A3CConfig.field(name).metadata
    if meta["flag"] is None:
        return {"topics": "TOPICS", "model_dir": "FOLDER"}[name]
    return meta["flag"] or "--" + name.replace("_", "-")


def _config_options() -> list[click.Option]:
    """One option per ``A3CConfig`` field that is not an argument."""
    types = {"int": click.INT, "float": click.FLOAT, "str": click.STRING}
    options = []
    for f in dataclasses.fields(A3CConfig):
        if f.metadata["flag"] is None:
            continue
        decls = [flag(f.name), f.name, *filter(None, [f.metadata["short"]])]
        default = getattr(_DEFAULTS, f.name)
        help = f.metadata["help"]
        if str(f.type) == "bool":
            options.append(click.Option(decls, is_flag=True, help=help))
            continue
        options.append(
            click.Option(
                decls,
                type=types[str(f.type).removesuffix(" | None")],
                default=default,
                show_default=default not in (None, ""),
                help=help,
            )
        )
    return options


@app.command(context_settings={"max_content_width": 100})
@click.argument("agent")
@click.argument("topics")
@click.argument("folder")
@click.option(
    "--transfer",
    metavar="FOLDER",
    help="Start from the weights of the model in this folder (a new optimizer "
    "and counters). FOLDER must not hold a model yet.",
)
@click.option(
    "--change-settings",
    is_flag=True,
    help="Resume FOLDER's model even though TOPICS or the options given change "
    "what it learns (topics, difficulty, loss, optimizer); the new settings are "
    "saved with it.",
)
@click.option(
    "--allow-nonempty",
    is_flag=True,
    help="Train a new model into a FOLDER that holds other files (they are left "
    "alone); without it such a folder is refused.",
)
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
@click.pass_context
def train(
    ctx: click.Context,
    agent: str,
    topics: str,
    folder: str,
    transfer: str | None,
    change_settings: bool,
    allow_nonempty: bool,
    progress: bool,
    **options: Any,
) -> None:
    """Train an AGENT (a3c) on Mathy TOPICS, or one gym:ENV_ID, into FOLDER.

    TOPICS: comma-separated, from poly, poly-blockers, poly-combine,
    poly-commute, poly-grouping, poly-like-terms-haystack, complex, binomial;
    or one gym:ENV_ID (a Gymnasium environment with a Discrete action space).

    Without --difficulty, a curriculum moves each worker between easy, normal
    and hard by its recent win rate; every move is printed.

    FOLDER is created if needed. If it holds a model, training resumes it
    (weights, optimizer state, counters, TensorBoard curves), never
    overwrites it: options left out take the values saved with it, and
    options that change what it learns must match unless --change-settings.
    One run at a time trains a folder. Ctrl-C or SIGTERM stops the workers
    and saves the model first.

    Examples: mathy train a3c poly output/my_agent --show;
    mathy train a3c gym:CartPole-v1 output/cartpole
    """
    from .checkpoint import CheckpointError, load_checkpoint, load_config
    from .folder import (
        ResumeConflict,
        check_resume,
        inspect_folder,
        refuse_other_files,
    )

    if agent not in AGENTS:
        _fail(f"Unknown agent {agent!r}. Valid agents: {', '.join(AGENTS)}")
    given = {
        name
        for name in options
        if ctx.get_parameter_source(name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    carried: dict[str, Any] = {}  # settings that come from a saved model
    saved: A3CConfig | None = None
    try:
        state = inspect_folder(folder)
        if state.has_model:
            if transfer is not None:
                _fail(
                    f"{folder} already holds a model; --transfer starts a new one, "
                    f"so give it an empty folder"
                )
            saved = load_config(folder)
            load_checkpoint(folder)  # a corrupt one is named before TensorFlow loads
            carried = {
                f.name: getattr(saved, f.name)
                for f in dataclasses.fields(A3CConfig)
                if f.metadata["resume"] != "session"
            }
        else:
            refuse_other_files(state, allow_nonempty)
            if transfer is not None:
                carried = {"model_size": load_config(transfer).model_size}
    except (CheckpointError, ConfigError) as error:
        _fail(str(error))
    values = {**options, **carried, **{name: options[name] for name in given}}
    try:
        config = A3CConfig(**{**values, "topics": [topics], "model_dir": folder})
        changes = (
            []
            if saved is None
            else check_resume(folder, saved, config, change_settings)
        )
    except ConfigError as error:
        _fail(error.render(flag))
    except ResumeConflict as error:
        _fail(error.render(flag, "--change-settings"))
    _check_extras(config)
    _train(config, transfer, change_settings, allow_nonempty, progress, changes)


def _check_extras(config: A3CConfig) -> None:
    """What the config alone cannot know, still before TensorFlow loads."""
    if config.is_gym:  # an unknown or non-Discrete environment
        from .gym_envs import gym_spec

        try:
            gym_spec(config.topics[0])
        except ConfigError as error:
            _fail(str(error))
    if config.backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            _fail(
                "--backend ray needs Ray, an optional extra: "
                "pip install 'mathy-a3c[ray]'"
            )
        _check_reachable(config.ray_address)


def _check_reachable(address: str) -> None:
    """A Ray address whose host does not answer fails now, not after the
    minutes ``ray.init`` spends retrying it."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "", "auto", or no port: Ray resolves it
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        why = error.strerror or str(error) or type(error).__name__
        _fail(f"--ray-address {address}: cannot reach {host}:{port} ({why})")


def _train(
    config: A3CConfig,
    transfer: str | None,
    change_settings: bool,
    allow_nonempty: bool,
    progress: bool,
    changes: list[SettingChange],
) -> None:
    """Take the folder, build the agent, train, and exit with the outcome."""
    from .checkpoint import CheckpointError, SaveError
    from .folder import check_space, hold_folder
    from .interrupts import StopSignals

    folder = config.model_dir
    try:
        with (
            # Signals first: a Ctrl-C once the folder exists must reach the
            # code that removes it again.
            StopSignals(None) as early,  # while TensorFlow loads
            hold_folder(folder) as lock,
        ):
            try:
                with quiet_native_logs():
                    from .runtime import configure_for_training

                    configure_for_training()  # this program trains
                    from .agent import A3CAgent, WorkerError, checkpoint_bytes

                    trainer = A3CAgent(
                        config,
                        progress=progress,
                        transfer=transfer,
                        change_settings=change_settings,
                        allow_nonempty=allow_nonempty,
                    )
            except BaseException:
                lock.discard_if_unused()
                raise
            if early.requested:
                lock.discard_if_unused()
                click.echo(
                    f"{early.name} received: exiting before training started; "
                    f"nothing to save",
                    err=True,
                )
                sys.exit(early.exit_code)
            check_space(folder, checkpoint_bytes(trainer.network.size))
            if trainer.resumed:
                click.echo(
                    f"Resuming {folder}: {trainer.total_episodes} episodes and "
                    f"{trainer.total_steps} steps so far"
                )
            if changes:
                click.echo(
                    "Changed since the last run: "
                    + ", ".join(c.describe(flag) for c in changes)
                )
            try:
                result = trainer.train()
            except ConfigError:  # found when the backend started: nothing ran
                lock.discard_if_unused()
                raise
            except KeyboardInterrupt:  # Ctrl-C: the workers stopped, the model saved
                # Exit at once (the folder's lock, a file lock, goes with the
                # process): a second Ctrl-C during the interpreter's own
                # shutdown (tenths of a second) would end it by SIGINT, not 130.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            except WorkerError as error:
                cause = error.__cause__
                if cause is not None and not isinstance(cause, FloatingPointError):
                    import traceback

                    traceback.print_exception(type(cause), cause, cause.__traceback__)
                click.echo(f"Error: {error}", err=True)
                sys.exit(1)
            except SaveError as error:  # after training: exit 1, not 2
                click.echo(f"Error: {error}", err=True)
                sys.exit(1)
    except CheckpointError as error:
        _fail(str(error))
    except ConfigError as error:  # found when the backend started
        _fail(error.render(flag))
    click.echo(
        f"Trained {result.episodes} episodes ({result.steps} steps, "
        f"{result.steps_per_second:.0f} steps/s, win rate {result.win_rate:.2f}) "
        f"in {result.seconds:.0f}s; model saved to {config.model_dir}"
    )
    if config.profile:
        click.echo(
            f"Profiles: {config.model_dir}/worker_N.profile "
            f"(view with: snakeviz {config.model_dir}/worker_0.profile)"
        )


train.params[3:3] = _config_options()  # after AGENT TOPICS FOLDER


# -- using a trained model ----------------------------------------------------
def _check_topic(topic: str | None) -> None:
    if topic is not None and topic not in TOPICS:
        _fail(f"Unknown topic {topic!r}. Valid topics: {', '.join(TOPICS)}")


def _check_count(option: str, value: int, high: int) -> None:
    if not 1 <= value <= high:
        _fail(f"{option} must be from 1 to {high}; got {value}")


def _search_options(default: str) -> Callable[[Callable[..., Any]], Any]:
    """``--search`` (defaulting to ``default``) and ``--simulations``, for
    simplify and evaluate."""

    def add(command: Callable[..., Any]) -> Any:
        command = click.option(
            "--simulations",
            type=int,
            default=DEFAULT_SIMULATIONS,
            show_default=True,
            help=f"Search simulations per move (at most {MAX_SIMULATIONS}); each "
            f"evaluates one new state with the model.",
        )(command)
        return click.option(
            "--search",
            default=default,
            show_default=True,
            help="none, or mcts: a Monte Carlo tree search guided by the model "
            "(its policy proposes, its value judges), for problems greedy play "
            "cannot solve.",
        )(command)

    return add


def _check_search(search: str, simulations: int) -> None:
    if search not in SEARCHES:
        _fail(f"Unknown search {search!r}. Valid searches: {', '.join(SEARCHES)}")
    _check_count("--simulations", simulations, MAX_SIMULATIONS)


@app.command()
@click.argument("problem")
@click.option("--model", "-m", required=True, help="A trained model folder.")
@click.option(
    "--max-steps",
    type=int,
    help="Stop after this many steps (default: the move budget).",
)
@click.option(
    "--topic", help="Treat the problem as this topic (default: the model's first)."
)
@click.option(
    "--strategy",
    default="no-revisit",
    show_default=True,
    help="greedy, no-revisit (greedy, but never back to an expression already "
    "seen while another action exists) or sample; used with --search none.",
)
@_search_options("mcts")
def simplify(
    problem: str,
    model: str,
    max_steps: int | None,
    topic: str | None,
    strategy: str,
    search: str,
    simulations: int,
) -> None:
    """Simplify PROBLEM step by step with a trained model.

    Exits 0 when the result is fully simplified, 1 when it is not, and 2 for
    a problem the parser rejects.
    """
    from .envs import ProblemError, parse_problem
    from .inference import STRATEGIES

    if strategy not in STRATEGIES:
        _fail(
            f"Unknown strategy {strategy!r}. Valid strategies: {', '.join(STRATEGIES)}"
        )
    _check_search(search, simulations)
    _check_topic(topic)
    if max_steps is not None:
        _check_count("--max-steps", max_steps, MAX_STEPS)
    try:
        parse_problem(problem)  # fail fast, before TensorFlow loads
    except ProblemError as error:
        _fail(str(error))
    agent = _load(model)
    if agent.config.is_gym:
        _fail(
            f"{model} holds a model for {agent.config.topics[0]}; simplify needs "
            f"one trained on Mathy topics"
        )
    click.echo(f"Problem: {problem}")
    count = iter(range(1, 1 << 30))
    try:
        solution = agent.simplify(
            problem,
            topic=topic,
            strategy=strategy,
            max_steps=max_steps,
            on_step=lambda step: click.echo(
                f"  {next(count):>3} | {step.rule[:26]:<26} @{step.node:<3} | "
                f"{step.expression}"
            ),
            search=search,
            simulations=simulations,
        )
    except ProblemError as error:
        _fail(str(error))
    if solution.search is not None:
        stats = solution.search
        click.echo(
            f"Search: {stats.simulations} simulations, {stats.nodes} states, "
            f"{stats.seconds:.2f} s"
        )
    if solution.win:
        click.echo(f"Simplified: {solution.final} ({len(solution.steps)} steps)")
        return
    why = f" ({solution.error})" if solution.error else ""
    click.echo(
        f"Not simplified: {solution.final} after {len(solution.steps)} steps{why}"
    )
    sys.exit(1)


@app.command()
@click.argument("folder")
@click.option(
    "--topics", help="Comma-separated topics (default: the ones the model trained on)."
)
@click.option(
    "--difficulty",
    help="easy, normal or hard (default: the model's; a curriculum model: all three).",
)
@click.option(
    "--problems",
    type=int,
    default=200,
    show_default=True,
    help=f"Generated problems per topic and difficulty (gym: episodes), at most "
    f"{MAX_PROBLEMS}.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the generated problems (training never uses a bare seed).",
)
@click.option(
    "--problems-file",
    help="Also evaluate problems from this file: one per line, '#' comments, "
    "'# group: NAME' lines start a group.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_search_options("none")
def evaluate(
    folder: str,
    topics: str | None,
    difficulty: str | None,
    problems: int,
    seed: int,
    problems_file: str | None,
    as_json: bool,
    search: str,
    simulations: int,
) -> None:
    """Win rates of a trained model: greedy, no-revisit and random play, and
    with --search mcts a tree search, with its time per problem."""
    from .checkpoint import CheckpointError, load_config
    from .envs import ProblemError
    from .evaluation import evaluate as run
    from .evaluation import generated_states, read_problems, typed_states

    _check_count("--problems", problems, MAX_PROBLEMS)
    _check_search(search, simulations)
    if not 0 <= seed <= MAX_SEED:
        _fail(f"--seed must be from 0 to {MAX_SEED}; got {seed}")
    try:
        saved = load_config(folder)
        config = saved.replace(
            topics=[topics] if topics is not None else saved.topics,
            difficulty=difficulty or saved.difficulty,
        )
    except ConfigError as error:
        _fail(error.render(lambda name: "--" + name))
    except CheckpointError as error:
        _fail(str(error))
    if config.is_gym:
        if search != "none":
            _fail(f"--search {search} needs a model trained on Mathy topics")
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
        except (OSError, ProblemError) as error:
            _fail(f"--problems-file: {error}")
        for group in dict.fromkeys(g for g, _ in written):
            texts = [t for g, t in written if g == group]
            topic = config.topics[0]
            states = typed_states(topic, texts, levels[0])
            sets.append((topic, levels[0], f"file: {group}", states))
    agent = _load(folder)
    searcher = None
    if search == "mcts":
        from .evaluation import evaluate_search
        from .search import MCTS

        searcher = MCTS(agent.search_evaluator(), simulations=simulations)
    rows = []
    for topic, level, label, states in sets:
        greedy = run(topic, states, agent.network.predict, "greedy", level)
        safe = run(topic, states, agent.network.predict, "no-revisit", level)
        rand = run(topic, states, None, difficulty=level, seed=seed)
        row: dict[str, Any] = {
            "topic": topic,
            "set": label,
            "problems": greedy.problems,
            "greedy_win_rate": round(greedy.win_rate, 4),
            "no_revisit_win_rate": round(safe.win_rate, 4),
            "greedy_mean_steps": round(greedy.mean_steps, 2),
            "random_win_rate": round(rand.win_rate, 4),
        }
        if searcher is not None:
            found = evaluate_search(topic, states, searcher, level)
            row["search_win_rate"] = round(found.win_rate, 4)
            row["search_mean_steps"] = round(found.mean_steps, 2)
            row["search_seconds_median"] = round(found.seconds_median, 4)
            row["search_seconds_p95"] = round(found.seconds_p95, 4)
            row["search_simulations"] = simulations
        rows.append(row)
    columns = [
        ("topic", "topic", "<26"),
        ("set", "set", "<36"),
        ("problems", "problems", ">8"),
        ("greedy_win_rate", "greedy", ">7.3f"),
        ("no_revisit_win_rate", "no-revisit", ">10.3f"),
        ("greedy_mean_steps", "steps", ">6.2f"),
        ("random_win_rate", "random", ">7.3f"),
    ]
    if searcher is not None:
        columns += [
            ("search_win_rate", "search", ">7.3f"),
            ("search_seconds_median", "s/problem", ">9.3f"),
            ("search_seconds_p95", "p95 s", ">7.3f"),
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

        click.echo(json.dumps({"model": folder, "seed": seed, "results": rows}))
        return
    header = " ".join(f"{title:{spec.split('.')[0]}}" for _, title, spec in columns)
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        click.echo(" ".join(f"{r[key]:{spec}}" for key, _, spec in columns))


@app.command()
@click.argument("topic")
@click.option(
    "--difficulty", default="easy", show_default=True, help="easy, normal or hard."
)
@click.option(
    "--number",
    type=int,
    default=10,
    show_default=True,
    help="How many problems to print.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the problem generator.",
)
def problems(topic: str, difficulty: str, number: int, seed: int) -> None:
    """Print generated problems of TOPIC with their complexity."""
    _check_topic(topic)
    if difficulty not in DIFFICULTIES:
        _fail(
            f"--difficulty must be one of {', '.join(DIFFICULTIES)}; got {difficulty!r}"
        )
    _check_count("--number", number, MAX_PROBLEMS)
    if not 0 <= seed <= MAX_SEED:
        _fail(f"--seed must be from 0 to {MAX_SEED}; got {seed}")
    from .envs import MathyTask

    task = MathyTask([topic], difficulty, seed=seed)
    click.echo(f"{'complexity':>10}  {'moves':>5}  problem")
    for _ in range(number):
        task.reset()
        assert task.state is not None
        complexity = task.last_complexity
        click.echo(f"{complexity:>10}  {task.state.max_moves:>5}  {task.problem}")


def _load(folder: str) -> A3CAgent:
    """The trained agent in ``folder``, or a one-line error and exit code 2."""
    from .checkpoint import CheckpointError, load_checkpoint, load_config

    try:
        load_config(folder)  # its files first: an error before TensorFlow loads
        load_checkpoint(folder)
        from .runtime import quiet_fast_tensorflow

        quiet_fast_tensorflow()  # this program's own settings, as for training
        with quiet_native_logs():
            from .agent import A3CAgent

            return A3CAgent.load(folder)
    except (CheckpointError, ConfigError) as error:
        _fail(str(error))
