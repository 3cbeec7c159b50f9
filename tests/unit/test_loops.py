"""The event loop commcentre starts for itself: uvloop where installed, else asyncio's."""

import asyncio
import sys

import pytest
import uvloop

from commcentre import loops


async def _running_loop() -> asyncio.AbstractEventLoop:
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


def test_run_drives_the_coroutine_on_uvloop() -> None:
    # uvloop is a dependency wherever it builds (not on Windows), as it is uvicorn's choice.
    loop = loops.run(_running_loop())
    assert isinstance(loop, uvloop.Loop)
    assert loop.is_closed()


def test_without_uvloop_it_is_asyncio_s_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails
    loop = loops.run(_running_loop())
    default = asyncio.new_event_loop()
    default.close()
    assert type(loop) is type(default)
    assert not isinstance(loop, uvloop.Loop)


def test_run_returns_the_result_and_raises_what_the_coroutine_raises() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        await asyncio.sleep(0)
        raise LookupError("gone")

    assert loops.run(answer()) == 42
    with pytest.raises(LookupError, match="gone"):
        loops.run(fail())
