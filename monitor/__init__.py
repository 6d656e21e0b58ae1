"""driftmon: a streaming data-drift monitor (Kafka in, PSI/KS drift out as Prometheus metrics).

The daemon is one loop on one core (docs/architecture.md, Threads), so BLAS runs
single-threaded unless the environment says otherwise: the small matrix products of the
joint-drift groups (`monitor.correlation`, `monitor.reconstruction`) took 15 ms instead of
0.1 ms per batch when OpenBLAS spread them over the threads of a busy machine. This takes
effect only when `monitor` is imported before numpy (as `driftmon run` does).
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
