"""Helpers of the security suite: running schemathesis' blocking engine against the
session app, which lives on the test's event loop."""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LoopBridge:
    """An ASGI app that serves each HTTP request with `app` on the event loop `loop`.

    Schemathesis calls an ASGI app from an event loop of its own, in its own thread;
    the session app's database engine, ingest writer and dispatcher belong to the
    test's loop. The bridge reads the whole request body where it is called, runs the
    request on `loop`, and replays the response messages. The app's lifespan is the
    session fixture's, so the bridge's own lifespan does nothing.
    """

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        future = asyncio.run_coroutine_threadsafe(self._serve(dict(scope), bytes(body)), self.loop)
        for message in await asyncio.wrap_future(future):
            await send(message)

    async def _serve(self, scope: Scope, body: bytes) -> list[Message]:
        sent: list[Message] = []
        delivered = False
        finished = asyncio.Event()

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                await finished.wait()
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(dict(message))
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished.set()

        scope.pop("state", None)
        await self.app(scope, receive, send)
        return sent
