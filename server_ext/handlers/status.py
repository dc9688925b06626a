"""GET /health and GET /v1/organizations/me."""
from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated, authorized

from claude_nb.bridge.status import cli_status
from claude_nb.protocol.errors import NotFound

from .base import ApiHandler, api_method


class HealthHandler(ApiHandler):
    """Anyone may ask whether it is up; the details need the token."""

    def allows_anonymous(self) -> bool:
        return True

    @allow_unauthenticated
    @api_method
    async def get(self):
        if self.anonymous:
            self.write_json({"status": "ok"})
            return
        cli = await cli_status(self.bridge.cli_path, fresh=self.get_query_argument("fresh", "") == "1")
        limiter = self.bridge.limiter
        body = {
            "status": ("ok" if cli["found"] and cli["logged_in"] and cli["supported"]["ok"]
                       else "degraded"),
            "cli": cli,
            "concurrency": {"limit": limiter.capacity, "active": limiter.active,
                            "queued": limiter.queued},
            "processes": {"live": len(self.bridge.live)},
        }
        for name, provider in self.app.health_sections.items():
            body[name] = provider()
        self.write_json(body)


class OrganizationHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        self.write_json({"id": self.app.organization_id, "type": "organization",
                         "name": "claude-nb on this Jupyter server"})


class UnknownRouteHandler(ApiHandler):
    """Anything else under /v1: a 404 in Anthropic's envelope, not Jupyter's HTML page."""

    def _missing(self, *args):
        raise NotFound(f"{self.request.method} {self.request.path} is not an endpoint of this API.")

    get = post = put = patch = delete = _missing
