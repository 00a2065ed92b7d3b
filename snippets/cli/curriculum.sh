# No --difficulty: each worker starts on easy and is promoted (or demoted) by its
# win rate over its last 20 episodes of a topic; every move is printed.
mathy train a3c poly output/curriculum --episodes 500 --curriculum-window 20 \
    --promote-at 0.75 --no-progress | grep "curriculum:"
# A curriculum model is evaluated at every difficulty.
mathy evaluate output/curriculum --problems 10
