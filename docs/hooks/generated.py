"""MkDocs hook: pages get their references and numbers from the source.

* ``<!-- mathy-help COMMAND -->`` becomes the output of ``mathy COMMAND --help``
  (``<!-- mathy-help -->`` for ``mathy --help``);
* ``<!-- config-table -->`` becomes a table of every ``A3CConfig`` field with
  its default and documentation;
* ``<!-- learning-results -->``, ``<!-- throughput-results -->``,
  ``<!-- search-results -->``, ``<!-- topics-results -->``,
  ``<!-- strategies-results -->`` and ``<!-- cartpole-results -->`` become
  tables of the JSON lines the benchmarks printed, kept in ``docs/results``.

So the reference pages cannot drift from the code, nor the numbers from the
benchmark output.
"""

from __future__ import annotations

import os
import re
from typing import Any

MARKER = re.compile(r"<!-- mathy-help(?: (?P<command>[a-z-]+))? -->")


def _help(command: str | None) -> str:
    from click.testing import CliRunner

    from mathy_a3c.cli import app

    args = [command, "--help"] if command else ["--help"]
    env = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}
    result = CliRunner().invoke(app, args, env=env, prog_name="mathy")
    if result.exit_code != 0:
        raise RuntimeError(f"mathy {' '.join(args)} failed:\n{result.output}")
    return result.output.rstrip()


def _config_table() -> str:
    import dataclasses

    from mathy_a3c.config import A3CConfig

    defaults = A3CConfig()
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(A3CConfig):
        value = getattr(defaults, field.name)
        text = str(field.metadata["help"]).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{value!r}` | {text} |")
    return "\n".join(rows)


# -- benchmark tables, rendered from the JSON lines the benchmarks printed -------
RESULTS = os.path.join(os.path.dirname(__file__), "..", "results")


def _jsonl(name: str) -> list[dict[str, Any]]:
    import json

    path = os.path.join(RESULTS, name)
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _dates(runs: list[dict[str, Any]]) -> str:
    """The dates of ``runs``: one date, or the first and last."""
    days = sorted({str(r.get("date", "?")) for r in runs})
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _median_and_each(values: list[float], form: str = ".3f") -> str:
    """The median in bold, then every value; one value alone; "–" for none."""
    if not values:
        return "–"
    text = format(_median(values), form)
    if len(values) == 1:
        return text
    return f"**{text}** ({', '.join(format(v, form) for v in values)})"


#: The model inputs of the topic benchmark's runs that record none (all were
#: made with the like marks, before the node-depth input).
BEFORE_DEPTH = (
    *("nodes", "values", "type", "time", "history", "last", "like", "factors"),
    "mask",
)


def _inputs(fields: Any) -> str:
    """What a run's model saw beyond the node types: the like marks, the
    node depths."""
    marks = "like marks" if "like" in fields else "no like marks"
    return marks + (", depth" if "depth" in fields else ", no depth")


def _defaults(run: dict[str, Any]) -> str:
    """The learning settings a run had (runs before 2026-12-01's like-term
    features record neither: they had lr 3e-4 and no marks)."""
    return f"lr {run.get('lr', 3e-4):g}, {_inputs(run.get('observation', ()))}"


def _topic_inputs(run: dict[str, Any]) -> str:
    return _inputs(run.get("observation", BEFORE_DEPTH))


def _learning_table() -> str:
    runs = _jsonl("learning.jsonl")
    rows = [
        "| topic | difficulty | training | seed | greedy win rate | mean steps "
        "| random win rate | env steps | steps/s | defaults of |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        rows.append(
            f"| {r['topic']} | {r['difficulty']} | {r['train_seconds']:.0f} s "
            f"| {r['seed']} | {r['greedy_win_rate']:.3f} | {r['greedy_mean_steps']} "
            f"| {r['random_win_rate']:.3f} | {r['env_steps']} | {r['steps_per_s']} "
            f"| {_defaults(r)} |"
        )
    groups = list(
        dict.fromkeys((r["topic"], r["difficulty"], _defaults(r)) for r in runs)
    )
    rows += [
        "",
        "| topic | difficulty | defaults of | median greedy win rate (seeds) |",
        "| --- | --- | --- | --- |",
    ]
    for topic, difficulty, defaults in groups:
        rates = [
            r["greedy_win_rate"]
            for r in runs
            if (r["topic"], r["difficulty"], _defaults(r))
            == (topic, difficulty, defaults)
        ]
        rows.append(
            f"| {topic} | {difficulty} | {defaults} | {_median(rates):.3f} "
            f"({len(rates)}) |"
        )
    rows += [
        "",
        "Hand-written problems (`benchmarks/problems/poly.txt`), greedy win "
        "rate per group, one column per run:",
        "",
    ]
    names = list(dict.fromkeys(g for r in runs for g in r["hand_written"]))
    header = " | ".join(f"{r['difficulty']} s{r['seed']}" for r in runs)
    rows += [
        f"| group | problems | {header} |",
        "| --- | --- | " + " | ".join("---" for _ in runs) + " |",
    ]
    for name in names:
        count = next(
            r["hand_written"][name]["problems"]
            for r in runs
            if name in r["hand_written"]
        )
        cells = " | ".join(
            f"{r['hand_written'][name]['greedy_win_rate']:.2f}"
            if name in r["hand_written"]
            else "-"
            for r in runs
        )
        rows.append(f"| {name} | {count} | {cells} |")
    return "\n".join(rows)


def _throughput_table() -> str:
    every = _jsonl("throughput.jsonl")
    # Runs that set each rate against the raw rate measured around it; the
    # older runs (one raw measurement at the start) only when there are none.
    # The newest three: runs of the code as it is (the seeds 0, 1, 2 of one
    # sitting), not of backends since changed.
    runs = ([r for r in every if "raw_seconds" in r] or every)[-3:]
    keys = sorted(
        {
            k[: -len("_steps_per_s")]
            for r in runs
            for k in r
            if k.endswith("_steps_per_s") and not k.startswith(("raw", "two_runs"))
        },
        key=lambda k: (
            k.split("_")[0] != "threads",
            k.split("_")[0],
            int(k.split("_")[1]),
        ),
    )
    rows = [
        "| backend | workers | steps/s (median) | x raw gym env | x threads "
        "| x processes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        backend, workers = key.split("_")
        rate = _median(
            [r[f"{key}_steps_per_s"] for r in runs if f"{key}_steps_per_s" in r]
        )
        gym = _median(
            [r[f"{key}_vs_raw_gym"] for r in runs if f"{key}_vs_raw_gym" in r]
        )
        versus = [r[f"{key}_vs_threads"] for r in runs if f"{key}_vs_threads" in r]
        processes = [
            r[f"{key}_vs_processes"] for r in runs if f"{key}_vs_processes" in r
        ]
        rows.append(
            f"| {backend} | {workers} | {rate:.0f} | {gym:.2f} | "
            f"{_median(versus) if versus else 1.0:.2f} | "
            f"{f'{_median(processes):.2f}' if processes else ''} |"
        )
    raw = _median([r["raw_gym_steps_per_s"] for r in runs])
    env = _median([r["raw_env_steps_per_s"] for r in runs])
    transport = _median([r["transport_ms"] for r in runs if "transport_ms" in r] or [0])
    rows += [
        "",
        f"Raw environment, random valid actions, one process: {raw:.0f} steps/s "
        f"through mathy_envs' gymnasium env, {env:.0f} steps/s through "
        f"`MathyTask`. One pipe round trip carrying the weights both ways: "
        f"{transport:.2f} ms (the processes backend shares memory instead). "
        f"Medians of {len(runs)} runs ({_dates(runs)}).",
    ]
    each = [r["raw_gym_steps_per_s_each"] for r in runs if "raw_seconds" in r]
    if each:
        low = min(min(rates) for rates in each)
        high = max(max(rates) for rates in each)
        rows += [
            "",
            f"The raw gymnasium rate, measured between the training measurements, "
            f"ran from {low:.0f} to {high:.0f} steps/s within these runs; each "
            f"ratio to it uses the two measurements around its training rate.",
        ]
    pairs = [r["two_runs_vs_one"] for r in runs if "two_runs_vs_one" in r]
    if pairs:
        rows += [
            "",
            "Two threads runs with 2 workers each, started side by side: together "
            f"{_median(pairs):.2f}x one run alone (median of "
            + ", ".join(f"{p:.2f}" for p in pairs)
            + ").",
        ]
    return "\n".join(rows)


def _cartpole_table() -> str:
    runs = _jsonl("cartpole.jsonl")
    rows = [
        "| seed | training seconds to a greedy mean return >= 475 | final mean return "
        "| env steps | steps/s | random mean return |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        reached = r["seconds_to_target"]
        took = "not reached" if reached is None else f"{reached:.0f}"
        rows.append(
            f"| {r['seed']} | {took} | {r['final_mean_return']:.1f} "
            f"| {r['env_steps']} | {r['steps_per_s']:.0f} "
            f"| {r['random_mean_return']:.1f} |"
        )
    reached = [r["seconds_to_target"] for r in runs if r["seconds_to_target"]]
    rows += [
        "",
        f"Reached in {len(reached)} of {len(runs)} runs"
        + (f", median {_median(reached):.0f} s." if reached else "."),
    ]
    return "\n".join(rows)


#: How each loss was judged (``--solvable`` of benchmarks/topics.py and
#: benchmarks/search.py; a search's losses have no first verdict).
LOST_VERDICTS = ("won_by_another_strategy", "solvable", "unsolvable", "unknown")


def _search_table() -> str:
    runs = _jsonl("search.jsonl")
    rows = [
        "| model | topic | difficulty | problems | greedy | no-revisit | search "
        "| s/problem (median) | s/problem (p95) | simulations per move "
        "| search losses: can be won / cannot / undecided |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        rows.append(
            f"| {os.path.basename(r['model'])} "
            f"| {r['topic']} | {r['difficulty']} | {r['set']}, {r['problems']} "
            f"| {r['greedy_win_rate']:.3f} | {r['no_revisit_win_rate']:.3f} "
            f"| {r['search_win_rate']:.3f} | {r['search_seconds_median']:.3f} "
            f"| {r['search_seconds_p95']:.3f} | {r['simulations']} "
            f"| {_search_losses(r)} |"
        )
    return "\n".join(rows)


def _search_losses(row: dict[str, Any]) -> str:
    """How the problems a search lost were judged (``--solvable``)."""
    if row["search_win_rate"] == 1.0:
        return "none lost"
    if "search_lost_solvable" not in row:
        return "not checked"
    return " / ".join(str(row[f"search_lost_{v}"]) for v in LOST_VERDICTS[1:])


def _topics_table() -> str:
    """One row per trained model's topic and evaluation difficulty: the median
    of its seeds, each seed's figure after it."""
    runs = _jsonl("topics.jsonl")
    groups: dict[tuple[str, str, str, str, float, str], list[dict[str, Any]]] = {}
    for r in runs:
        key = (r["trained_on"], r["topic"], r["train_difficulty"], r["difficulty"])
        groups.setdefault((*key, r["budget_seconds"], _topic_inputs(r)), []).append(r)
    rows = [
        "| topic | trained on | training | budget | model inputs | evaluated at "
        "| seeds | greedy | no-revisit | random | greedy mean steps | env steps "
        "| greedy losses: won by another strategy / by the breadth-first "
        "search / cannot be won / undecided |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]

    def stat(group: list[dict[str, Any]], name: str) -> str:
        return _median_and_each([r[name] for r in group if name in r])

    for (trained, topic, training, level, budget, inputs), group in groups.items():
        seeds = ", ".join(str(r["seed"]) for r in group)
        rates = " | ".join(
            stat(group, f"{name}_win_rate")
            for name in ("greedy", "no_revisit", "random")
        )
        steps = _median([r["greedy_mean_steps"] for r in group])
        env_steps = _median([r["env_steps"] for r in group])
        searched = [r for r in group if "greedy_lost_solvable" in r]
        lost = (
            " / ".join(
                str(sum(r[f"greedy_lost_{v}"] for r in searched))
                if all(f"greedy_lost_{v}" in r for r in searched)
                else "–"
                for v in LOST_VERDICTS
            )
            if searched
            else "–"
        )
        rows.append(
            f"| {topic} | {trained} | {training} | {budget:.0f} s | {inputs} "
            f"| {level} | {seeds} | {rates} | {steps:.1f} | {env_steps:,.0f} "
            f"| {lost} |"
        )
    return "\n".join(rows)


def _strategies_table() -> str:
    """Search while training against plain A3C: the topic benchmark's runs of
    each strategy (``settings``), alone at one difficulty and budget, by
    topic: medians over seeds, each seed's figure after them."""
    searched = _jsonl("strategies.jsonl")
    plain = [
        r
        for r in _jsonl("topics.jsonl")
        if r["trained_on"] == r["topic"] and not r["settings"]
    ]
    # The searching runs were made before the node-depth input: compare them
    # with the plain runs whose models saw the same inputs.
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = {}
    for r in searched:
        key = (r["topic"], r["difficulty"], r["train_difficulty"], r["budget_seconds"])
        strategy = r["settings"].get("action_strategy", "a3c")
        groups.setdefault((*key, strategy), []).append(r)
        same = (*key, "a3c")
        if same not in groups:
            groups[same] = [
                p
                for p in plain
                if (p["topic"], p["difficulty"], p["train_difficulty"]) == key[:3]
                and p["budget_seconds"] == key[3]
                and _topic_inputs(p) == _topic_inputs(r)
            ]
    rows = [
        "| topic | training | budget | evaluated at | action strategy | seeds "
        "| greedy win rate | no-revisit | env steps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def each(group: list[dict[str, Any]], name: str, form: str) -> str:
        return _median_and_each([r[name] for r in group], form)

    for (topic, level, training, budget, strategy), group in sorted(groups.items()):
        seeds = ", ".join(str(r["seed"]) for r in group)
        rows.append(
            f"| {topic} | {training} | {budget:.0f} s | {level} | `{strategy}` "
            f"| {seeds} "
            f"| {each(group, 'greedy_win_rate', '.3f')} "
            f"| {each(group, 'no_revisit_win_rate', '.3f')} "
            f"| {each(group, 'env_steps', ',.0f')} |"
        )
    return "\n".join(rows)


TABLES = {
    "<!-- cartpole-results -->": _cartpole_table,
    "<!-- config-table -->": _config_table,
    "<!-- learning-results -->": _learning_table,
    "<!-- search-results -->": _search_table,
    "<!-- strategies-results -->": _strategies_table,
    "<!-- throughput-results -->": _throughput_table,
    "<!-- topics-results -->": _topics_table,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every marker with text generated from the code or the results."""
    os.environ.setdefault("COLUMNS", "100")

    def render(match: re.Match[str]) -> str:
        command = match.group("command")
        title = f"mathy {command} --help" if command else "mathy --help"
        return f"```text\n$ {title}\n{_help(command)}\n```"

    markdown = MARKER.sub(render, markdown)
    for marker, make in TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
