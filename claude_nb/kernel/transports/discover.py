"""Which transport a kernel uses: the server that published itself, its parent server, or none.

The extension puts its URL and token in the server's environment (`CLAUDE_NB_URL`,
`CLAUDE_NB_TOKEN`), so every kernel it starts inherits them; `connect(url, token)` overrides.
"""
from __future__ import annotations

import json
import os
import threading

from ..errors import ClaudeError
from .base import Transport
from .http import HttpTransport
from .inprocess import InProcessTransport

URL_ENV, TOKEN_ENV = "CLAUDE_NB_URL", "CLAUDE_NB_TOKEN"


def _parent_server() -> tuple[str, str] | None:
    """The Jupyter server that started this kernel, from its runtime file (cheap: one stat).

    Only the server whose pid is this kernel's JPY_PARENT_PID is considered: never some other
    server of the same user.
    """
    parent = os.environ.get("JPY_PARENT_PID")
    if not parent or not parent.isdigit():
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir
        path = os.path.join(jupyter_runtime_dir(), f"jpserver-{parent}.json")
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError, ImportError):
        return None
    url = info.get("url")      # the server's connection URL, base_url included
    if not url or info.get("sock"):
        return None
    return url, info.get("token") or ""


def discover_transport(config=None) -> Transport:
    """$CLAUDE_NB_URL (+ $CLAUDE_NB_TOKEN), else the parent server if it serves /v1, else in-process."""
    url = os.environ.get(URL_ENV)
    if url:
        return HttpTransport(url, os.environ.get(TOKEN_ENV))
    parent = _parent_server()
    if parent:
        candidate = HttpTransport(*parent, timeout=5)
        try:
            candidate.request("GET", "v1/models", params={"limit": 1})
        except ClaudeError:
            pass
        else:
            return HttpTransport(*parent)
    return InProcessTransport(config=config)


_default_transport: Transport | None = None
_default_lock = threading.Lock()


def default_transport() -> Transport:
    global _default_transport
    with _default_lock:
        if _default_transport is None:
            config = None
            try:
                from IPython import get_ipython
                shell = get_ipython()
                config = shell.config if shell is not None else None
            except ImportError:
                pass
            _default_transport = discover_transport(config)
        return _default_transport


def connect(url: str | None = None, token: str | None = None) -> Transport:
    """Point claude_nb at a Jupyter server (url=None: run the bridge in-process). Returns it."""
    global _default_transport
    with _default_lock:
        _default_transport = HttpTransport(url, token) if url else InProcessTransport()
        return _default_transport
