"""Load a trained model and use it: simplify a problem, predict an action."""

from mathy_a3c import A3CAgent, A3CConfig
from mathy_a3c.envs import MathyTask

# A small model to load (point A3CAgent.load at your own folder instead).
A3CAgent(A3CConfig(model_dir="output/small_agent", max_eps=200), console=False).train()

agent = A3CAgent.load("output/small_agent")
solution = agent.simplify("4x + 2x + 7y^2 + y^2")
for number, step in enumerate(solution.steps, start=1):
    print(f"{number}. {step.rule} at node {step.node}: {step.expression}")
print("simplified" if solution.win else "not simplified", "->", solution.final)

# The policy on a generated problem: action probabilities and the greedy action.
observation = MathyTask(["poly"], "easy", seed=1).reset()
probabilities = agent.action_probabilities(observation)
print("greedy action:", agent.predict(observation), "p =", probabilities.max())
