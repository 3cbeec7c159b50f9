"""How big a fault run is: short by default (the regular suite), long with FAULT_SCALE=long.

    FAULT_SCALE=long .venv/bin/pytest tests/faults -s -p no:cacheprovider   # `make faults-long`

Short runs keep each new fault test to about 20 s on a 2-core machine, so that
`make test` can afford them; long runs kill more often, send more and wait longer.
"""

import os
from typing import TypeVar

T = TypeVar("T")

SCALE_ENV = "FAULT_SCALE"  # not COMMCENTRE_*: the suite clears those for every test
LONG = os.environ.get(SCALE_ENV, "").strip().lower() == "long"
NAME = "long" if LONG else "short"


def scaled(short: T, long: T) -> T:
    """`short` in a default run, `long` with FAULT_SCALE=long."""
    return long if LONG else short
