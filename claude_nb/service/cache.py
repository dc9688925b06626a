"""The result cache: an identical request is answered from the store, without running the CLI.

"Identical" is a canonical hash of everything that shapes the answer: the model (aliases
resolved, so `sonnet` and its full id share entries), system, messages, max_tokens, tools,
thinking, output_config (the structured output's schema), stop sequences and every other
parameter. `stream` and `metadata` are left out: they change how an answer is delivered or
labelled, not what it says.

The cache is consulted where requests are answered, in `ClaudeBridge.stream` (through the
`result_cache` hook this module attaches), so the server's /v1/messages, its batch runner and
the kernel's in-process transport all share one cache in the store. A request opts in: the
`claude-nb-cache` header over HTTP, `cache=True` in-process, a batch's option. A hit runs no
CLI process and bills nothing: it is recorded in the store's `cache_hits` ledger (apart from
`runs`, at zero cost) and the usage report counts it apart.

Only complete answers are stored (end_turn, stop_sequence, tool_use, max_tokens); errors,
refusals and cut answers never are. The store keeps at most `max_size_mb`; the least recently
used answers go first.
"""
from __future__ import annotations

import copy
import hashlib
import json
import uuid

from traitlets import Bool, Float
from traitlets.config import LoggingConfigurable

from ..protocol.errors import InvalidRequest
from ..protocol.models import resolve_model
from ..protocol.pricing import estimate_cost

CACHE_HEADER = "claude-nb-cache"
KEY_VERSION = "claude-nb-cache/1"
UNKEYED_FIELDS = ("stream", "metadata")
CACHEABLE_STOPS = ("end_turn", "stop_sequence", "tool_use", "max_tokens")
_ON, _OFF = ("1", "true", "yes", "on", "use"), ("0", "false", "no", "off", "")


def parse_cache_header(value: str | None) -> bool:
    """The `claude-nb-cache` request header: on (`use`, `1`, `true`) or off; 400 otherwise."""
    text = (value or "").strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise InvalidRequest(f"{CACHE_HEADER}: {value!r} should be 'use' (answer from and fill the "
                         "result cache) or 'off'")


def request_key(body: dict) -> str:
    """The canonical hash of a Messages request (see the module doc)."""
    canonical = {k: v for k, v in body.items() if k not in UNKEYED_FIELDS}
    try:
        canonical["model"] = resolve_model(body.get("model")).id
    except Exception:
        pass           # an unknown model fails later, at the request itself
    if "output_format" in canonical:        # the beta spelling of output_config.format
        config = dict(canonical.get("output_config") or {})
        config.setdefault("format", canonical.pop("output_format"))
        canonical["output_config"] = config
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                     default=str)
    return hashlib.sha256((KEY_VERSION + "\n" + raw).encode("utf-8")).hexdigest()


def cacheable(message: dict | None) -> bool:
    return (isinstance(message, dict) and message.get("stop_reason") in CACHEABLE_STOPS
            and bool(message.get("content")))


def as_served(message: dict) -> dict:
    """A stored answer as a hit returns it: the same content and usage, a fresh id."""
    out = copy.deepcopy(message)
    out["id"] = "msg_" + uuid.uuid4().hex[:24]
    return out


def replay_events(message: dict) -> list[dict]:
    """The stream events a client would have received for `message`."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**(message.get("usage") or {}), "output_tokens": 1}}
    events: list[dict] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {**block, "text": ""}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": block.get("text", "")}})
        elif kind == "thinking":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "thinking_delta", "thinking": block.get("thinking", "")}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "signature_delta",
                                     "signature": block.get("signature", "")}})
        elif kind == "tool_use":
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta",
                                     "partial_json": json.dumps(block.get("input") or {})}})
        else:          # redacted thinking and the like arrive whole in their start event
            events.append({"type": "content_block_start", "index": index, "content_block": block})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message.get("stop_reason"),
                             "stop_sequence": message.get("stop_sequence")},
                   "usage": {"output_tokens": (message.get("usage") or {}).get("output_tokens", 0)}})
    events.append({"type": "message_stop"})
    return events


class ResultCache(LoggingConfigurable):
    """Answers by request key, in the store. `attach(bridge)` makes the bridge consult it for
    requests that opt in (`ClaudeBridge.stream(..., cache=True)`)."""

    enabled = Bool(True, config=True,
                   help="Answer requests that ask for it (the claude-nb-cache header, "
                        "cache=True, DataFrame methods, claude_nb.batch) from stored answers. "
                        "Off: every request runs the CLI and nothing is stored.")
    max_size_mb = Float(256.0, config=True,
                        help="Largest size of the stored answers, in MB; beyond it the least "
                             "recently used ones are dropped.")

    def __init__(self, store, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.observe(lambda change: self.store.cache_trim(self.max_bytes), "max_size_mb")

    @property
    def max_bytes(self) -> int:
        return max(0, int(self.max_size_mb * 1024 * 1024))

    def attach(self, bridge) -> "ResultCache":
        bridge.result_cache = self
        return self

    # -- the bridge's hook ----------------------------------------------------------------
    def answer(self, body: dict, *, request_id: str | None, source: str) -> list[dict] | None:
        """The replayed stream events of a stored answer to `body`, ending with its
        `claude_nb.final_usage` (the hit is recorded), or None when there is none."""
        if not self.enabled:
            return None
        stored = self.lookup_many([body])[0]
        if stored is None:
            return None
        self.record_hits([stored], request_id=request_id, source=source)
        # the final usage is the stored answer's: what it stands for (it billed nothing)
        return replay_events(stored) + [{"type": "claude_nb.final_usage",
                                         "usage": stored.get("usage") or {}}]

    def save(self, body: dict, message: dict) -> bool:
        """Keep a complete answer for the next identical request."""
        if not self.enabled or not cacheable(message):
            return False
        try:
            self.store.cache_put(request_key(body), str(message.get("model") or ""),
                                 json.dumps(message, separators=(",", ":")),
                                 max_bytes=self.max_bytes)
        except Exception:      # a full disk must not fail an answer that was given
            self.log.exception("claude_nb: could not store an answer in the result cache")
            return False
        return True

    # -- many at once (batches, estimates) -------------------------------------------------
    def lookup_many(self, bodies: list[dict]) -> list[dict | None]:
        """For each request, its stored answer as a hit serves it (fresh id), or None."""
        if not self.enabled or not bodies:
            return [None] * len(bodies)
        keys = [request_key(b) for b in bodies]
        found = self.store.cache_get(list(dict.fromkeys(keys)))
        return [as_served(json.loads(found[k])) if k in found else None for k in keys]

    def contains_many(self, bodies: list[dict]) -> list[bool]:
        """Which requests would be answered from the cache (nothing is counted as used)."""
        if not self.enabled or not bodies:
            return [False] * len(bodies)
        keys = [request_key(b) for b in bodies]
        present = self.store.cache_contains(list(dict.fromkeys(keys)))
        return [k in present for k in keys]

    def record_hits(self, messages: list[dict], *, request_id: str | None = None,
                    source: str) -> None:
        """Ledger entries for answers served from the cache: billed nothing, saved this much."""
        hits = []
        for message in messages:
            usage = message.get("usage") or {}
            model = str(message.get("model") or "")
            hits.append((request_id, source, model, usage, estimate_cost(model, usage)))
        if not hits:
            return
        try:
            self.store.record_cache_hits(hits)
        except Exception:      # the ledger is bookkeeping: the answer stands
            self.log.exception("claude_nb: could not record result cache hits")

    # -- upkeep ---------------------------------------------------------------------------
    def clear(self) -> int:
        """Forget every stored answer; returns how many there were."""
        return self.store.cache_clear()

    def stats(self) -> dict:
        return {"enabled": self.enabled, "max_size_mb": self.max_size_mb,
                **self.store.cache_stats()}
