"""Upstream answers scripted by prompt, for tests whose requests run concurrently."""
from __future__ import annotations

import threading
from collections import Counter, defaultdict

from tests.support.fake_upstream import Reply


class Script:
    """Upstream answers chosen by prompt (requests run concurrently, so order is no key):
    scripted replies per prompt first, then an echo. Counts every request per prompt."""

    def __init__(self, upstream):
        self.replies = defaultdict(list)
        self.counts = Counter()
        self.order: list[str] = []
        self._lock = threading.Lock()
        upstream.responder = self

    def on(self, prompt: str, *replies: Reply) -> "Script":
        self.replies[prompt].extend(replies)
        return self

    def __call__(self, rec):
        texts = rec.user_texts()
        prompt = texts[-1] if texts else ""
        with self._lock:
            self.counts[prompt] += 1
            self.order.append(prompt)
            if self.replies[prompt]:
                return self.replies[prompt].pop(0)
        return Reply.text("You said: " + prompt)
