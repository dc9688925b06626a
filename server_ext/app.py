"""The extension application: configuration, routes, and the lifetime of the bridge."""
from __future__ import annotations

import os
import uuid

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool

from claude_nb.bridge import ClaudeBridge

from .handlers.messages import CountTokensHandler, MessagesHandler
from .handlers.models import ModelHandler, ModelsHandler
from .handlers.status import HealthHandler, OrganizationHandler


class ClaudeNbApp(ExtensionApp):
    name = "server_ext"
    description = "An Anthropic-compatible API over the Claude Code CLI, at {base_url}v1/"
    load_other_extensions = True

    publish_to_kernels = Bool(True, config=True,
                              help="Put this server's URL and token in the environment of kernels "
                                   "it starts (CLAUDE_NB_URL, CLAUDE_NB_TOKEN), so `claude_nb` in a "
                                   "notebook uses this server's queue, pool and usage record.")

    def initialize_settings(self):
        self.bridge = ClaudeBridge(parent=self)
        # name -> callable returning a JSON-able dict, shown in /health
        self.health_sections: dict = {}
        self.organization_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "claude-nb:" + jupyter_data_dir()))

    def initialize_handlers(self):
        self.handlers.extend([
            (r"/v1/messages", MessagesHandler),
            (r"/v1/messages/count_tokens", CountTokensHandler),
            (r"/v1/models", ModelsHandler),
            (r"/v1/models/(?P<model_id>[^/]+)", ModelHandler),
            (r"/v1/organizations/me", OrganizationHandler),
            (r"/health", HealthHandler),
            (r"/v1/health", HealthHandler),
        ])

    async def _start_jupyter_server_extension(self, serverapp):
        if self.publish_to_kernels:
            os.environ["CLAUDE_NB_URL"] = serverapp.connection_url
            token = getattr(serverapp.identity_provider, "token", "") or ""
            os.environ["CLAUDE_NB_TOKEN"] = token
        self.log.info("claude_nb: Anthropic-compatible API at %sv1/", serverapp.connection_url)
        self.health_sections["pool"] = self.bridge.pool_status
        await self.bridge.start_pool()          # prewarm: the first request answers warm

    async def stop_extension(self):
        await self.bridge.close()
