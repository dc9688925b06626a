"""The service: the server's parts wired together once.

A `Service` holds the CLI bridge, the durable store, the batch runner and the plan-quota
tracker, connected the one way they must be: the store records every run of the bridge and
resolves its `file_id` sources, the tracker listens to the bridge and keeps its state in the
store, the runner works batches from the store through the bridge.

The Jupyter extension (`server_ext/app.py`) owns one; so does the in-process transport of a
kernel with no server (`claude_nb/kernel/transports/inprocess.py`). Both start and stop it the
same way, so a batch, a usage record or a quota report means the same thing on either side.
"""
from __future__ import annotations

import os

from ..bridge import ClaudeBridge
from .batches import BatchRunner
from .quota import QuotaTracker, tracker_for
from .store import DB_NAME, Store, default_store_dir

QUOTA_STATE = "quota"       # the store's state key for the quota tracker


class Service:
    """Bridge + store + batch runner + quota tracker. `start()` / `stop()` bracket its life.

    `store` may be None (an in-process kernel whose data dir cannot be written): answers still
    work, nothing is recorded, and batches and reports say they need the store.
    """

    def __init__(self, bridge: ClaudeBridge, store: Store | None, *, traits: dict | None = None):
        self.bridge = bridge
        self.store = store
        self.quota: QuotaTracker = tracker_for(bridge)
        self.runner: BatchRunner | None = None
        self._runner_started = False
        if store is not None:
            store.attach(bridge)          # usage ledger + file_id sources in messages
            self.quota.restore(store.get_state(QUOTA_STATE) or {})
            self.quota.on_change = lambda state: store.put_state(QUOTA_STATE, state)
            self.runner = BatchRunner(store, bridge, **(traits or {}))

    @classmethod
    def create(cls, *, parent=None, config=None, store_dir: str = "") -> "Service":
        """A bridge and a store made here. `parent` (a traitlets app) or `config` configure
        `ClaudeBridge` and `BatchRunner`; `store_dir` empty: claude_nb/ under the Jupyter data dir."""
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
        failing because the bridge closed under them. Then the bridge, then the store."""
        self._runner_started = True           # no restart by a late request
        if self.runner is not None:
            await self.runner.stop()
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
        sections["quota"] = self.quota.summary
        sections["pool"] = self.bridge.pool_status
        return sections
