"""The service: the server's parts wired together once.

A `Service` holds the CLI bridge, the durable store, the result cache, the batch runner, the
plan-quota tracker and the message threads, connected the one way they must be: the store
records every run of the bridge and resolves its `file_id` sources, the result cache (in the
store) answers the bridge's requests that opt in, the tracker listens to the bridge and keeps its
state in the store, the runner works batches from the store through the bridge, the threads hold
conversations over the bridge's pool (in memory; only the server's `/v1/messages` takes
`thread`: an in-process kernel chats through the bridge's sessions).

The Jupyter extension (`server_ext/app.py`) owns one; so does the in-process transport of a
kernel with no server (`claude_nb/kernel/transports/inprocess.py`). Both start and stop it the
same way, so a batch, a usage record or a quota report means the same thing on either side.
"""
from __future__ import annotations

import os

from ..bridge import ClaudeBridge
from .batches import BatchRunner
from .cache import ResultCache
from .quota import QuotaTracker, tracker_for
from .store import DB_NAME, Store, default_store_dir
from .threads import MessageThreads

QUOTA_STATE = "quota"       # the store's state key for the quota tracker


class Service:
    """Bridge + store + result cache + batch runner + quota tracker + message threads.
    `start()` / `stop()` bracket its life.

    `store` may be None (an in-process kernel whose data dir cannot be written): answers still
    work, nothing is recorded or cached, and batches, reports and the cache say they need the
    store.
    """

    def __init__(self, bridge: ClaudeBridge, store: Store | None, *, traits: dict | None = None):
        self.bridge = bridge
        self.store = store
        self.quota: QuotaTracker = tracker_for(bridge)
        # Message threads: in memory, over the bridge's pool (c.MessageThreads.ttl, .max_threads)
        self.threads = MessageThreads(bridge, **(traits or {}))
        self.runner: BatchRunner | None = None
        self.result_cache: ResultCache | None = None
        self._runner_started = False
        if store is not None:
            store.attach(bridge)          # usage ledger + file_id sources in messages
            # one cache for the bridge's every caller: /v1/messages, batches, the kernel
            self.result_cache = ResultCache(store, **(traits or {})).attach(bridge)
            self.quota.restore(store.get_state(QUOTA_STATE) or {})
            self.quota.on_change = lambda state: store.put_state(QUOTA_STATE, state)
            self.runner = BatchRunner(store, bridge, **(traits or {}))

    @classmethod
    def create(cls, *, parent=None, config=None, store_dir: str = "") -> "Service":
        """A bridge and a store made here. `parent` (a traitlets app) or `config` configure
        `ClaudeBridge`, `ResultCache`, `BatchRunner` and `MessageThreads`; `store_dir` empty:
        claude_nb/ under the Jupyter data dir."""
        traits = {"parent": parent} if parent is not None else {"config": config} if config else {}
        bridge = ClaudeBridge(**traits)
        store = Store(os.path.join(store_dir, DB_NAME) if store_dir else default_store_dir() / DB_NAME)
        return cls(bridge, store, traits=traits)

    # -- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume unfinished batches, check the installed CLI (its version against the supported
        window, logged) and prewarm the pool (the first request answers warm)."""
        await self.start_batch_runner()
        await self.bridge.check_cli()
        await self.bridge.start_pool()

    async def start_batch_runner(self) -> None:
        """Start the batch runner once: it resumes batches an earlier run left unfinished."""
        if not self._runner_started and self.runner is not None:
            self._runner_started = True
            await self.runner.start()

    async def stop(self) -> None:
        """The runner first: requests it ends stay unfinished (for the next start) rather than
        failing because the bridge closed under them. Then the threads, the bridge, the store."""
        self._runner_started = True           # no restart by a late request
        if self.runner is not None:
            await self.runner.stop()
        await self.threads.close()
        await self.bridge.close()
        if self.store is not None:
            self.store.close()

    # -- what /health shows ---------------------------------------------------------------
    def health_sections(self) -> dict:
        """name -> callable returning a JSON-able dict."""
        sections = {}
        if self.store is not None:
            sections["batches"] = lambda: {
                "store": str(self.store.path),
                "unfinished": len(self.store.unfinished_batches()),
                "worked_here": len(self.runner.active_batches)}
            sections["result_cache"] = self.result_cache.stats
        sections["quota"] = self.quota.summary
        sections["threads"] = self.threads.stats
        sections["pool"] = self.bridge.pool_status
        return sections
