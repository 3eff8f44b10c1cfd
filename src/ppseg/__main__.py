"""``python -m ppseg`` is the same as the ``ppseg`` command."""

import sys

from .cli import main

sys.exit(main())
