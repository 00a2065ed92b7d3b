"""One A3C worker: roll out with a local model, push gradients, resync.

A worker knows nothing about threads or about the agent that owns it. It talks
to two narrow interfaces:

* a :class:`Learner`, which applies its gradients to the global model and
  copies the global weights back into its local model;
* a :class:`Reporter`, which receives finished episodes, ``--show`` lines
  and, with ``--profile``, the worker's profile (a worker writes no file: a
  remote one may run on another machine).

Worker threads of one process also share a :class:`~mathy_a3c.turn.Turn`:
a worker holds it while it runs Python, and gives it up between updates once
it has held it for its quantum (20 ms when the run starts, up to 200 ms
later: the threads take turns, a few updates each, and a worker resyncs
with the global model when its turn comes back), while it sleeps, and while
TensorFlow computes a gym network's gradients. Where none of them gives the
turn up in the middle of a rollout, they share one local model too
(:meth:`Worker._shares_local_with`).
"""

from __future__ import annotations

import cProfile
import marshal
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import numpy as np

from .config import A3CConfig
from .counting import StepCounter
from .curriculum import Curriculum
from .envs import MathyTask, stack
from .model import ActorCritic, network_for
from .numpy_actor import NumpyActor, VectorNumpyActor
from .policy import sample_action
from .returns import advantages_and_returns
from .search import MCTS
from .tasks import make_task
from .turn import Turn
from .types import EpisodeReport, LossTerms

#: One step of a rollout: the actor's trace of the state (its observation and
#: forward pass), the action taken, its reward and the value of the state.
Transition = tuple[Any, int, float, float]


class Learner(Protocol):
    """Where a worker's gradients go and where its weights come from."""

    def update(self, local: ActorCritic) -> np.ndarray | None:
        """Apply ``local``'s last gradients (``local.flat_gradients()``) to the
        global model, then copy the global weights into ``local``. May return
        them as a flat vector."""

    def copy_to(self, local: ActorCritic) -> np.ndarray | None:
        """Overwrite a local model's weights with the global ones. May return
        them as a flat vector."""


class EpisodeSource(Protocol):
    """Hands out episode numbers until the run has had ``max_eps`` of them."""

    def claim(self) -> int | None:
        """The next episode number, or ``None`` when no episode should start."""

    def finish(self) -> int:
        """Record that a claimed episode finished."""


class Reporter(Protocol):
    def episode(self, report: EpisodeReport) -> None:
        """A worker finished an episode."""

    def show(self, worker: int, text: str) -> None:
        """A line of worker 0's in-episode output (``--show``)."""

    def profile(self, worker: int, stats: bytes) -> None:
        """The worker's cProfile statistics (``--profile``), marshalled as in a
        ``.profile`` file, when it stops."""


class Worker:
    """Runs episodes until the counter runs out or ``stop`` is set."""

    def __init__(
        self,
        worker_id: int,
        config: A3CConfig,
        learner: Learner,
        reporter: Reporter,
        episodes: EpisodeSource,
        steps: StepCounter,
        stop: threading.Event,
        first_episode: int = 0,
        turn: Turn | None = None,
        beside: Worker | None = None,
    ) -> None:
        self.id = worker_id
        #: Worker threads of one process share this turn, held while running
        #: Python and given up while TensorFlow computes gradients or the
        #: worker sleeps (see :meth:`_away`). ``None`` for a worker alone in
        #: its process.
        self.turn = turn
        self.first_episode = first_episode
        self.config = config
        self.learner = learner
        self.reporter = reporter
        self.episodes = episodes
        self.steps = steps
        self.stop = stop
        # A resumed run (first_episode > 0) draws new problems, not the old ones.
        problem_seed, action_seed = np.random.SeedSequence(
            [config.seed, worker_id, first_episode]
        ).generate_state(2)
        # A Mathy episode's end never bootstraps: its state is not observed.
        self.task = make_task(
            config, seed=int(problem_seed), offset=worker_id, observe_ends=False
        )
        self.rng = np.random.default_rng(int(action_seed))
        #: The model it computes gradients with, and the numpy copy it acts
        #: with: its own, or those of the worker ``beside`` it (see
        #: :meth:`_shares_local_with`). Their initial weights never count:
        #: the global ones replace them.
        self.local: ActorCritic
        self.actor: NumpyActor | VectorNumpyActor
        if beside is not None and self._shares_local_with(beside):
            self.local, self.actor = beside.local, beside.actor
        else:
            # Worker threads of one process share one traced gradient function.
            self.local = network_for(
                config,
                self.task.spec,
                seed=0,
                gradients_from=None if beside is None else beside.local,
            )
            self.actor = self.local.numpy_actor()
        #: The tree search that picks this worker's moves (``action_strategy``),
        #: guided by the local model; ``None``: moves are sampled.
        self.search: MCTS | None = None
        if (config.action_strategy, worker_id == 0) in (
            ("mcts_worker_0", True),
            ("mcts_worker_n", False),
        ):
            # The config allows a search on Mathy topics only.
            assert isinstance(self.actor, NumpyActor)
            assert isinstance(self.task, MathyTask)
            self.search = MCTS(self.actor.batch, simulations=config.mcts_sims)
        self.curriculum = (
            Curriculum(config.curriculum_window, config.promote_at, config.demote_below)
            if config.curriculum
            else None
        )
        self.show = config.print_training and worker_id == 0
        self.wait_s = config.worker_wait / 1000.0 if worker_id > 0 else 0.0

    def _shares_local_with(self, other: Worker) -> bool:
        """Whether this worker can use ``other``'s local model and acting copy.

        Worker threads that take turns run one at a time, and each gives the
        turn up only with its rollout empty: between updates, or waiting for
        its coordinator between episodes. Its next rollout is then played and
        learned from with the weights the model holds when it takes the turn
        back: the global weights, copied by whichever worker updated last (a
        worker that takes the turn back between updates copies them afresh).
        So one local model serves them all: the workers after the first build
        no network of their own (0.11 s and about 2.5 MB each), and a process
        keeps one copy of the network's arrays instead of one per worker.

        Not where a worker gives the turn up in the middle of a rollout: while
        it sleeps (``worker_wait``), or while TensorFlow computes a gym
        network's gradients. The other would change the weights under it.
        """
        return (
            self.turn is not None
            and other.turn is self.turn
            and self.config.worker_wait == 0
            and other.local.has_numpy_gradients
        )

    # ------------------------------------------------------------------
    def run(self) -> None:
        """Work until done; with ``profile`` on, report the profile at the end."""
        profiler = cProfile.Profile() if self.config.profile else None
        if profiler is not None:
            profiler.enable()
        try:
            with self.turn.held() if self.turn is not None else nullcontext():
                self._work()
        finally:
            if profiler is not None:
                profiler.disable()
                profiler.create_stats()  # what Profile.dump_stats writes, as bytes
                self.reporter.profile(self.id, marshal.dumps(profiler.stats))

    def _work(self) -> None:
        self._refresh(self.learner.copy_to(self.local))
        while not self.stop.is_set():
            episode = self.episodes.claim()
            if episode is None:
                break
            report = self.run_episode(self.first_episode + episode)
            if report is None:  # stopped mid-episode
                break
            self.episodes.finish()
            self.reporter.episode(report)

    def _away(self) -> AbstractContextManager[None]:
        """Give up the turn for a block that does not need the interpreter."""
        return self.turn.away() if self.turn is not None else nullcontext()

    def run_episode(self, episode: int) -> EpisodeReport | None:
        """Play one episode, updating the global model every few steps."""
        start = time.perf_counter()
        difficulty = None
        if self.curriculum is not None:
            difficulty = self.curriculum.difficulty(self.task.next_topic)
        observation = self.task.reset(difficulty)
        problem = self.task.problem
        if self.show:
            self.reporter.show(self.id, self.task.describe_start())
        losses: list[LossTerms] = []
        total_reward, steps = 0.0, 0
        rollout: list[Transition] = []
        while True:
            # The update's gradient reads the forward pass from the trace.
            trace = self.actor.trace(observation)
            logits, value = trace.logits, trace.value
            if self.search is not None:
                assert isinstance(self.task, MathyTask)
                action = self.search.choose(self.task)
            else:
                action = sample_action(logits, observation.mask, self.rng)
            result = self.task.step(action)
            rollout.append((trace, action, result.reward, value))
            total_reward += result.reward
            steps += 1
            if self.show:
                self.reporter.show(self.id, self.task.describe_step(steps, result))
            if result.done or len(rollout) >= self.config.update_interval:
                # Bootstrap from V(s') unless the task really ended (a time
                # limit is not the task's end: see StepResult.truncated).
                ended = result.done and not result.truncated
                bootstrap = 0.0 if ended else self.actor(result.observation)[1]
                losses.append(self.update(rollout, bootstrap))
                rollout = []
            if result.done:
                break
            if self.stop.is_set():
                return None
            observation = result.observation
            if self.wait_s > 0:
                with self._away():
                    time.sleep(self.wait_s)
        self.steps.add(steps)
        mean = LossTerms(*np.mean(np.asarray(losses, dtype=np.float64), axis=0))
        change = None
        if self.curriculum is not None:
            change = self.curriculum.record(self.task.topic, result.win)
        return EpisodeReport(
            worker=self.id,
            episode=episode,
            topic=self.task.topic,
            problem=problem,
            final=result.expression,
            steps=steps,
            reward=total_reward,
            win=result.win,
            losses=mean,
            seconds=time.perf_counter() - start,
            env_error=result.error,
            difficulty=self.task.difficulty,
            level_change=change.describe(self.id) if change else "",
        )

    def update(self, rollout: list[Transition], bootstrap: float) -> LossTerms:
        """Gradients on the local model -> global optimizer -> resync."""
        traces, actions, rewards, values = zip(*rollout, strict=True)
        advantages, returns = advantages_and_returns(
            np.asarray(rewards, np.float32),
            np.asarray(values, np.float32),
            bootstrap,
            self.config.gamma,
            self.config.gae_lambda,
        )
        if self.local.has_numpy_gradients:  # Mathy: no TensorFlow call
            terms = self.local.numpy_gradients(
                list(traces), np.asarray(actions), advantages, returns
            )
        else:
            inputs = self.local.gradient_inputs(
                stack([t.observation for t in traces]),
                np.asarray(actions),
                advantages,
                returns,
            )
            with self._away():  # TensorFlow runs without the GIL: let others act
                terms = self.local.run_gradients(inputs)
        if not (np.isfinite(terms.total) and np.isfinite(terms.grad_norm)):
            raise FloatingPointError(
                f"worker {self.id}: non-finite loss {terms.total} or gradient norm "
                f"{terms.grad_norm}; the global model was not updated"
            )
        weights = self.learner.update(self.local)
        # The other worker threads take their turns; after theirs, this one
        # starts its next rollout from the global weights they updated.
        if self.turn is not None and self.turn.between_updates():
            weights = self.learner.copy_to(self.local)
        self._refresh(weights)
        return terms

    def _refresh(self, weights: np.ndarray | None) -> None:
        """The acting copy follows the local model (``None``: stopping)."""
        if weights is not None:
            self.actor.refresh(weights)
