"""The extension application: configuration, routes, and the lifetime of its `Service`."""
from __future__ import annotations

import os
import uuid

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Unicode

from claude_nb.service.runtime import Service

from .handlers.batches import (BatchCancelHandler, BatchesHandler, BatchHandler,
                               BatchProgressHandler, BatchResultsHandler,
                               BatchResultsSoFarHandler)
from .handlers.cache import ResultCacheHandler, ResultCacheLookupHandler
from .handlers.files import FileContentHandler, FileHandler, FilesHandler
from .handlers.messages import (CountTokensHandler, MessagesHandler, SessionHandler,
                                ThreadHandler)
from .handlers.metrics import MetricsHandler, QuotaHandler, record_request_metrics
from .handlers.models import ModelHandler, ModelsHandler
from .handlers.openai import ChatCompletionsHandler
from .handlers.openapi import DocsAssetHandler, DocsPageHandler, OpenAPIHandler
from .handlers.reports import CostReportHandler, UsageReportHandler
from .handlers.status import HealthHandler, OrganizationHandler, UnknownRouteHandler
from .metrics import ServiceMetrics


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
        self.service = Service.create(parent=self, store_dir=self.store_dir)
        # name -> callable returning a JSON-able dict, shown in /health
        self.health_sections: dict = self.service.health_sections()
        self.metrics = (ServiceMetrics().attach_bridge(self.bridge).attach_quota(self.quota)
                        .attach_store(self.store))
        self.organization_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "claude-nb:" + jupyter_data_dir()))

    # The service's parts, for operators and tests poking at a running server.
    @property
    def bridge(self):
        return self.service.bridge

    @property
    def store(self):
        return self.service.store

    @property
    def batch_runner(self):
        return self.service.runner

    @property
    def quota(self):
        return self.service.quota

    @property
    def threads(self):
        return self.service.threads

    @property
    def result_cache(self):
        return self.service.result_cache

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
            (r"/claude_nb/threads/(?P<message_id>[^/]+)", ThreadHandler),
            (r"/claude_nb/cache", ResultCacheHandler),
            (r"/claude_nb/cache/lookup", ResultCacheLookupHandler),
            (r"/claude_nb/batches/(?P<batch_id>[^/]+)/results", BatchResultsSoFarHandler),
            (r"/claude_nb/batches/(?P<batch_id>[^/]+)/progress", BatchProgressHandler),
            (r"/v1/openapi.json", OpenAPIHandler),
            (r"/claude_nb/docs", DocsPageHandler),
            (r"/claude_nb/docs/(?P<name>[^/]+)", DocsAssetHandler),
        ])
        # Last: every other /v1 path (and /v1 itself) answers a 404 envelope.
        self.handlers.append((r"/v1(?:/.*)?", UnknownRouteHandler))

    async def _start_jupyter_server_extension(self, serverapp):
        record_request_metrics(serverapp.web_app, self.metrics)
        if self.publish_to_kernels:
            os.environ["CLAUDE_NB_URL"] = serverapp.connection_url
            token = getattr(serverapp.identity_provider, "token", "") or ""
            os.environ["CLAUDE_NB_TOKEN"] = token
        self.log.info("claude_nb: Anthropic-compatible API at %sv1/", serverapp.connection_url)
        await self.service.start()

    async def stop_extension(self):
        await self.service.stop()
