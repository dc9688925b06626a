"""The extension application: configuration, routes, and the lifetime of the bridge."""
from __future__ import annotations

import os
import uuid

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Unicode

from claude_nb.batches import BatchRunner
from claude_nb.bridge import ClaudeBridge
from claude_nb.metrics import ServiceMetrics
from claude_nb.quota import tracker_for
from claude_nb.service.cache import ResultCache
from claude_nb.store import DB_NAME, Store, default_store_dir

from .handlers.batches import (BatchCancelHandler, BatchesHandler, BatchHandler,
                               BatchResultsHandler, BatchResultsSoFarHandler)
from .handlers.cache import ResultCacheHandler, ResultCacheLookupHandler
from .handlers.files import FileContentHandler, FileHandler, FilesHandler
from .handlers.messages import CountTokensHandler, MessagesHandler, SessionHandler
from .handlers.metrics import MetricsHandler, QuotaHandler, record_request_metrics
from .handlers.models import ModelHandler, ModelsHandler
from .handlers.openai import ChatCompletionsHandler
from .handlers.reports import CostReportHandler, UsageReportHandler
from .handlers.status import HealthHandler, OrganizationHandler, UnknownRouteHandler


class ClaudeNbApp(ExtensionApp):
    name = "server_ext"
    description = "An Anthropic-compatible API over the Claude Code CLI, at {base_url}v1/"
    load_other_extensions = True

    publish_to_kernels = Bool(True, config=True,
                              help="Put this server's URL and token in the environment of kernels "
                                   "it starts (CLAUDE_NB_URL, CLAUDE_NB_TOKEN), so `claude_nb` in a "
                                   "notebook uses this server's queue, pool and usage record.")

    store_dir = Unicode("", config=True,
                        help="Directory of the durable store (batches, files, usage ledger). "
                             "Empty: claude_nb/ under the Jupyter data dir.")

    def initialize_settings(self):
        self.bridge = ClaudeBridge(parent=self)
        self.store = Store(os.path.join(self.store_dir, DB_NAME) if self.store_dir
                           else default_store_dir() / DB_NAME)
        self.store.attach(self.bridge)       # usage ledger + file_id sources in messages
        self.result_cache = ResultCache(self.store, parent=self).attach(self.bridge)
        self.batch_runner = BatchRunner(self.store, self.bridge, parent=self)
        self._runner_started = False
        # name -> callable returning a JSON-able dict, shown in /health
        self.health_sections: dict = {}
        self.health_sections["batches"] = lambda: {
            "store": str(self.store.path),
            "unfinished": len(self.store.unfinished_batches()),
            "worked_here": len(self.batch_runner.active_batches)}
        self.health_sections["result_cache"] = self.result_cache.stats
        # Plan quota from the CLI's rate-limit reports, kept in the store across restarts.
        self.quota = tracker_for(self.bridge)
        self.quota.restore(self.store.get_state("quota") or {})
        self.quota.on_change = lambda state: self.store.put_state("quota", state)
        self.health_sections["quota"] = self.quota.summary
        self.metrics = (ServiceMetrics().attach_bridge(self.bridge).attach_quota(self.quota)
                        .attach_store(self.store))
        self.organization_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "claude-nb:" + jupyter_data_dir()))

    def initialize_handlers(self):
        self.handlers.extend([
            (r"/v1/messages", MessagesHandler),
            (r"/v1/messages/count_tokens", CountTokensHandler),
            (r"/v1/messages/batches", BatchesHandler),
            (r"/v1/messages/batches/(?P<batch_id>[^/]+)", BatchHandler),
            (r"/v1/messages/batches/(?P<batch_id>[^/]+)/cancel", BatchCancelHandler),
            (r"/v1/messages/batches/(?P<batch_id>[^/]+)/results", BatchResultsHandler),
            (r"/v1/files", FilesHandler),
            (r"/v1/files/(?P<file_id>[^/]+)", FileHandler),
            (r"/v1/files/(?P<file_id>[^/]+)/content", FileContentHandler),
            (r"/v1/organizations/usage_report/messages", UsageReportHandler),
            (r"/v1/organizations/cost_report", CostReportHandler),
            (r"/v1/models", ModelsHandler),
            (r"/v1/models/(?P<model_id>[^/]+)", ModelHandler),
            (r"/v1/organizations/me", OrganizationHandler),
            (r"/health", HealthHandler),
            (r"/v1/health", HealthHandler),
            (r"/v1/chat/completions", ChatCompletionsHandler),
            (r"/v1/usage/quota", QuotaHandler),
            (r"/metrics", MetricsHandler),
            (r"/claude_nb/sessions/(?P<session>[^/]+)", SessionHandler),
            (r"/claude_nb/cache", ResultCacheHandler),
            (r"/claude_nb/cache/lookup", ResultCacheLookupHandler),
            (r"/claude_nb/batches/(?P<batch_id>[^/]+)/results", BatchResultsSoFarHandler),
        ])
        # Last: every other /v1 path (and /v1 itself) answers a 404 envelope.
        self.handlers.append((r"/v1(?:/.*)?", UnknownRouteHandler))

    async def _start_jupyter_server_extension(self, serverapp):
        record_request_metrics(serverapp.web_app, self.metrics)
        if self.publish_to_kernels:
            os.environ["CLAUDE_NB_URL"] = serverapp.connection_url
            token = getattr(serverapp.identity_provider, "token", "") or ""
            os.environ["CLAUDE_NB_TOKEN"] = token
        await self.start_batch_runner()
        self.log.info("claude_nb: Anthropic-compatible API at %sv1/", serverapp.connection_url)
        self.health_sections["pool"] = self.bridge.pool_status
        await self.bridge.check_cli()
        await self.bridge.start_pool()          # prewarm: the first request answers warm

    async def start_batch_runner(self):
        """Start the batch runner once: it resumes batches an earlier run left unfinished. Also
        called by the batch handlers, for hosts that never call the extension's start hook
        (pytest-jupyter's server, for one)."""
        if not self._runner_started:
            self._runner_started = True
            await self.batch_runner.start()

    async def stop_extension(self):
        self._runner_started = True           # no restart by a late request
        # The runner first: requests it ends stay unfinished (for the next start), rather than
        # failing because the bridge closed under them.
        await self.batch_runner.stop()
        await self.bridge.close()
        self.store.close()
