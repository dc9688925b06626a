"""The result cache: its state (GET), clearing it (DELETE), and which requests it would answer
(POST .../lookup, for estimates made before anything is sent: which requests are cached, and
how many requests this server runs at once)."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized

from claude_nb.service.batches import MAX_BATCH_BYTES
from claude_nb.protocol.errors import InvalidRequest
from claude_nb.protocol.validation import parse_json_body

from .base import ApiHandler, api_method


class _CacheHandler(ApiHandler):
    @property
    def cache(self):
        return self.service.result_cache


class ResultCacheHandler(_CacheHandler):
    @api_method
    @authorized
    async def get(self):
        self.write_json(self.cache.stats())

    @api_method
    @authorized
    async def delete(self):
        self.write_json({"type": "cache_cleared", "deleted": self.cache.clear()})


class ResultCacheLookupHandler(_CacheHandler):
    @api_method
    @authorized
    async def post(self):
        body = parse_json_body(self.request.body, limit=MAX_BATCH_BYTES)
        requests = body.get("requests")
        if not isinstance(requests, list) or not all(isinstance(r, dict) for r in requests):
            raise InvalidRequest("requests: a list of Messages request objects")
        cached = await asyncio.to_thread(self.cache.contains_many, requests)
        # with how many requests run at once here: what an estimate of the time needs
        self.write_json({"cached": cached, "concurrency": self.bridge.limiter.capacity})
