# A3C on a Gymnasium environment: gym:ENV_ID, any Discrete action space.
mathy train a3c gym:CartPole-v1 output/cartpole --episodes 600 --no-progress
# Greedy and random mean returns over 20 episodes.
mathy evaluate output/cartpole --problems 20
