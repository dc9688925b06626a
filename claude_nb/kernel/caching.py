"""The result cache as a notebook sees it: `claude_nb.cache_clear()`, `claude_nb.cache_info()`,
and which requests it would answer (for estimates). The cache itself lives where requests are
answered (claude_nb.service.cache): the Jupyter server, or this process without one."""
from __future__ import annotations

from ..client import HttpTransport, InProcessTransport, default_transport

CACHE_PATH = "claude_nb/cache"


def _local(transport: InProcessTransport):
    from ..local import LocalCache
    return LocalCache(transport)


def cache_clear() -> int:
    """Forget every stored answer (the next identical requests run and bill again); returns how
    many there were."""
    transport = default_transport()
    if isinstance(transport, HttpTransport):
        return int(transport.request("DELETE", CACHE_PATH)["deleted"])
    return _local(transport).clear()


def cache_info() -> dict:
    """entries, size_bytes, hits (served so far), enabled and max_size_mb
    (`c.ResultCache.max_size_mb`, on the server or in the IPython profile)."""
    transport = default_transport()
    if isinstance(transport, HttpTransport):
        return transport.request("GET", CACHE_PATH)
    return _local(transport).stats()


def lookup(requests: list[dict]) -> tuple[list[bool], int]:
    """Which of these Messages requests the cache would answer, and how many requests run at
    once where they would run."""
    transport = default_transport()
    if isinstance(transport, HttpTransport):
        body = transport.request("POST", CACHE_PATH + "/lookup", body={"requests": requests})
        return [bool(c) for c in body["cached"]], int(body.get("concurrency") or 1)
    return _local(transport).contains(requests), int(transport.bridge.max_concurrency)
