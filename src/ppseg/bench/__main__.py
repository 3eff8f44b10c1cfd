"""``python -m ppseg.bench --worker JOB --result OUT``: the measuring subprocess that
:func:`ppseg.bench.run_benchmark` starts for each (backend, threads) pair (internal).
"""

import sys

from .worker import _worker_main

if __name__ == "__main__":
    sys.exit(_worker_main())
