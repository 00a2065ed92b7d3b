# Profile every worker, then list the hottest functions of worker 0.
mathy train a3c poly output/profiled --episodes 100 --profile --no-progress
python -c "import pstats; pstats.Stats('output/profiled/worker_0.profile').sort_stats('tottime').print_stats(5)"
# In a browser: snakeviz output/profiled/worker_0.profile
