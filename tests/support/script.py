"""Upstream answers scripted by prompt, for tests whose requests run concurrently."""
from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict

from tests.support.fake_upstream import Reply


class Script:
    """Upstream answers chosen by prompt (requests run concurrently, so order is no key):
    scripted replies per prompt first, then a standing reply (`always`), then an echo. Counts
    every upstream request per prompt, and the CLI runs they came from (`runs`: newer CLIs ask
    once more by themselves after a 400, with fewer betas)."""

    def __init__(self, upstream):
        self.replies = defaultdict(list)
        self.standing: dict[str, Reply] = {}
        self.counts = Counter()
        self.runs = defaultdict(set)
        self.order: list[str] = []
        self._lock = threading.Lock()
        upstream.responder = self

    def on(self, prompt: str, *replies: Reply) -> "Script":
        self.replies[prompt].extend(replies)
        return self

    def always(self, prompt: str, reply: Reply) -> "Script":
        """Answer every request for `prompt` this way (as the API answers a bad request)."""
        self.standing[prompt] = reply
        return self

    def __call__(self, rec):
        texts = rec.user_texts()
        prompt = texts[-1] if texts else ""
        with self._lock:
            self.counts[prompt] += 1
            self.runs[prompt].add(cli_session(rec))
            self.order.append(prompt)
            if self.replies[prompt]:
                return self.replies[prompt].pop(0)
            if prompt in self.standing:
                return self.standing[prompt]
        return Reply.text("You said: " + prompt)


def cli_session(rec) -> str | None:
    """The CLI process that sent an upstream request (each run has its own session id)."""
    try:
        return json.loads(rec.body["metadata"]["user_id"])["session_id"]
    except (KeyError, TypeError, ValueError):
        return None
