# The same training on worker processes instead of threads.
mathy train a3c poly output/processes --backend processes --workers 2 --episodes 200 --no-progress
