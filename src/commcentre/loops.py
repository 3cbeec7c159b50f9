"""The event loop every commcentre process runs on.

`commcentre serve` runs on the loop uvicorn picks: uvloop where it is installed (its
"auto" setting). The loops commcentre starts itself, the worker's and the ingest
writer's thread, take the same, so that a process never runs on two kinds of loop and
the worker shape is measured on the loop the embedded shape has. Without uvloop
(Windows), both fall back to asyncio's own loop.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on `new_event_loop()`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
