"""A Jupyter server extension used by bench/loop.py only: measures the server's event loop lag.

Every INTERVAL it sleeps on the server's own loop and records how late it woke up: the time any
callback (a handler, a stream write, a kernel message) waits for the loop. GET
{base_url}bench/loop-lag returns [time.monotonic(), lag] pairs recorded so far (the clock is
system-wide, so the benchmark can place them in its own phases); ?reset=1 clears them.
"""
from __future__ import annotations

import asyncio
import json
import time

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

INTERVAL = 0.02
lags: list[tuple[float, float]] = []


async def _probe() -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(INTERVAL)
        lags.append((time.monotonic(), max(0.0, loop.time() - start - INTERVAL)))


class LoopLagHandler(JupyterHandler):
    @web.authenticated
    def get(self):
        data = list(lags)
        if self.get_argument("reset", ""):
            lags.clear()
        self.set_header("content-type", "application/json")
        self.finish(json.dumps(data))


def _jupyter_server_extension_points():
    return [{"module": "loop_probe"}]


def _load_jupyter_server_extension(serverapp):
    route = url_path_join(serverapp.base_url, "bench/loop-lag")
    serverapp.web_app.add_handlers(".*$", [(route, LoopLagHandler)])
    IOLoop.current().add_callback(lambda: asyncio.ensure_future(_probe()))
