# Train on easy poly problems with 2 worker threads and watch worker 0 play.
mathy train a3c poly output/my_agent --episodes 300 --show
