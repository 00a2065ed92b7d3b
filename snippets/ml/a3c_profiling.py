"""Profile every A3C worker thread with cProfile.

Each worker writes ``worker_N.profile`` into the model folder. Open one with
``snakeviz output/profiled_agent/worker_0.profile``, or read it with pstats
as below.
"""

import os
import pstats

from mathy_a3c import A3CAgent, A3CConfig

config = A3CConfig(
    topics=["poly"],
    model_dir="output/profiled_agent",
    num_workers=2,
    max_eps=6,
    model_size=16,
    profile=True,
)
A3CAgent(config).train()

for worker in range(config.num_workers):
    path = os.path.join(config.model_dir, f"worker_{worker}.profile")
    print(f"--- {path}")
    pstats.Stats(path).sort_stats("cumulative").print_stats(8)
