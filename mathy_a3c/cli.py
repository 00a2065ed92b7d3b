"""The ``mathy`` command line. TensorFlow is imported inside commands only."""

from __future__ import annotations

import typer

from . import __version__
from .config import AGENTS, DIFFICULTIES, TOPICS, A3CConfig, ConfigError

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
        ..., help="Comma-separated Mathy topics: " + ", ".join(TOPICS) + "."
    ),
    folder: str = typer.Argument(..., help="Model folder to create (or overwrite)."),
    difficulty: str = typer.Option(
        _DEFAULTS.difficulty, help="Difficulty: " + ", ".join(DIFFICULTIES) + "."
    ),
    workers: int = typer.Option(_DEFAULTS.num_workers, help=_help("num_workers")),
    episodes: int = typer.Option(_DEFAULTS.max_eps, help=_help("max_eps")),
    max_seconds: float = typer.Option(_DEFAULTS.max_seconds, help=_help("max_seconds")),
    update_interval: int = typer.Option(
        _DEFAULTS.update_interval, help=_help("update_interval")
    ),
    worker_wait: float = typer.Option(_DEFAULTS.worker_wait, help=_help("worker_wait")),
    lr: float = typer.Option(_DEFAULTS.lr, help=_help("lr")),
    gamma: float = typer.Option(_DEFAULTS.gamma, help=_help("gamma")),
    gae_lambda: float = typer.Option(_DEFAULTS.gae_lambda, help=_help("gae_lambda")),
    entropy_coef: float = typer.Option(
        _DEFAULTS.entropy_coef, help=_help("entropy_coef")
    ),
    value_coef: float = typer.Option(_DEFAULTS.value_coef, help=_help("value_coef")),
    max_grad_norm: float = typer.Option(
        _DEFAULTS.max_grad_norm, help=_help("max_grad_norm")
    ),
    model_size: int = typer.Option(_DEFAULTS.model_size, help=_help("model_size")),
    seed: int = typer.Option(_DEFAULTS.seed, help=_help("seed")),
    save_every: float = typer.Option(
        _DEFAULTS.save_every_s, help=_help("save_every_s")
    ),
    show: bool = typer.Option(False, "--show", help=_help("print_training")),
    profile: bool = typer.Option(False, "--profile", help=_help("profile")),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=_help("verbose")),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train an agent on Mathy TOPICS and save it in FOLDER.

    Example: mathy train a3c poly output/my_agent --show
    """
    if agent not in AGENTS:
        raise _fail(f"Unknown agent {agent!r}. Valid agents: {', '.join(AGENTS)}")
    try:
        config = A3CConfig(
            topics=[topics],
            difficulty=difficulty,
            model_dir=folder,
            num_workers=workers,
            max_eps=episodes,
            max_seconds=max_seconds,
            update_interval=update_interval,
            worker_wait=worker_wait,
            lr=lr,
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

    from .agent import A3CAgent, WorkerError

    try:
        result = A3CAgent(config, progress=progress).train()
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
    except WorkerError as error:
        import traceback

        cause = error.__cause__
        if cause is not None:
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
