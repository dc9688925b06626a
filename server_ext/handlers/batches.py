"""/v1/messages/batches: create, list, retrieve, cancel, delete, and the JSONL results."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from claude_nb.service import batches
from claude_nb.service.cache import CACHE_HEADER, parse_cache_header

from .base import ApiHandler, api_method
from .paging import cursor_arguments

RESULTS_CHUNK = 256 * 1024      # bytes of JSONL written between flushes


class BatchApiHandler(ApiHandler):
    async def prepare(self):
        await super().prepare()
        # for hosts that never call the extension's start hook (pytest-jupyter's server)
        await self.service.start_batch_runner()

    def api_base(self) -> str:
        """This server's own absolute base URL, for `results_url`: the SDK fetches it as is, so
        a relative one would lose a base_url prefix (JupyterHub's /user/NAME/)."""
        return f"{self.request.protocol}://{self.request.host}{self.base_url}"

    def write_batch(self, batch):
        self.write_json(batches.batch_json(batch, base_url=self.api_base()))


class BatchesHandler(BatchApiHandler):
    @api_method
    @authorized
    async def post(self):
        # Up to 256 MB and 100,000 requests to check: off the event loop.
        use_cache = parse_cache_header(self.request.headers.get(CACHE_HEADER))
        requests = await asyncio.to_thread(batches.parse_create_body, self.request.body)
        self.write_batch(await self.service.runner.create(requests, use_cache=use_cache))

    @api_method
    @authorized
    async def get(self):
        self.write_json(batches.list_page(self.service.store, **cursor_arguments(self),
                                          base_url=self.api_base()))


class BatchHandler(BatchApiHandler):
    @api_method
    @authorized
    async def get(self, batch_id: str):
        self.write_batch(self.service.store.get_batch(batch_id))

    @api_method
    @authorized
    async def delete(self, batch_id: str):
        self.service.store.delete_batch(batch_id)
        self.write_json(batches.deleted_json(batch_id))


class BatchCancelHandler(BatchApiHandler):
    @api_method
    @authorized
    async def post(self, batch_id: str):
        self.write_batch(await self.service.runner.cancel(batch_id))


class BatchResultsHandler(BatchApiHandler):
    @api_method
    @authorized
    async def get(self, batch_id: str):
        lines = batches.results_lines(self.service.store, batch_id)
        first = next(lines, b"")      # 404/400 surface here, before the 200 is committed
        content_type = "application/x-jsonl; charset=utf-8"
        self.set_header("Content-Type", content_type)
        buffer = [first]
        size = len(first)
        try:
            for line in lines:
                buffer.append(line)
                size += len(line)
                if size >= RESULTS_CHUNK:
                    self.write(b"".join(buffer))
                    await self.flush()
                    buffer, size = [], 0
        except StreamClosedError:
            return      # the client left
        self.finish(b"".join(buffer), set_content_type=content_type)


class BatchResultsSoFarHandler(BatchApiHandler):
    """GET /claude_nb/batches/<id>/results: the results stored so far, while the batch still
    runs (the API's own results endpoint answers only once it has ended). JSONL, input order."""

    @api_method
    @authorized
    async def get(self, batch_id: str):
        lines = await asyncio.to_thread(lambda: list(batches.results_so_far(self.service.store,
                                                                                 batch_id)))
        self.finish(b"".join(lines), set_content_type="application/x-jsonl; charset=utf-8")


class BatchProgressHandler(BatchApiHandler):
    """GET /claude_nb/batches/<id>/progress: how many requests have a result right now (the
    API's counts stay in `processing` until the end); what the notebook's progress bar reads."""

    @api_method
    @authorized
    async def get(self, batch_id: str):
        self.write_json(await asyncio.to_thread(batches.progress_json, self.service.store, batch_id))
