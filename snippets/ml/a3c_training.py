"""Train an A3C agent on polynomial simplification from Python.

Sizes are tiny so the example finishes in seconds; raise ``max_eps`` (and
leave ``model_size`` at its default) to train a useful agent.
"""

from mathy_a3c import A3CAgent, A3CConfig

config = A3CConfig(
    topics=["poly"],
    difficulty="easy",
    model_dir="output/my_agent",
    num_workers=2,
    max_eps=10,
    model_size=16,
)
result = A3CAgent(config).train()
print(
    f"{result.episodes} episodes, win rate {result.win_rate:.2f}, "
    f"saved to {result.model_dir}"
)
