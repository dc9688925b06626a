"""The result cache as a notebook sees it: `claude_nb.cache_clear()`, `claude_nb.cache_info()`,
and which requests it would answer (for estimates). The cache itself lives where requests are
answered (claude_nb.service.cache): the Jupyter server, or this process without one; the
transport's `result_cache()` reaches it."""
from __future__ import annotations

from .transports import default_transport


def cache_clear() -> int:
    """Forget every stored answer (the next identical requests run and bill again); returns how
    many there were."""
    return default_transport().result_cache().clear()


def cache_info() -> dict:
    """entries, size_bytes, hits (served so far), enabled and max_size_mb
    (`c.ResultCache.max_size_mb`, on the server or in the IPython profile)."""
    return default_transport().result_cache().info()


def lookup(requests: list[dict]) -> tuple[list[bool], int]:
    """Which of these Messages requests the cache would answer, and how many requests run at
    once where they would run."""
    return default_transport().result_cache().lookup(requests)
