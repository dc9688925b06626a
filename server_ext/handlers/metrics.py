"""GET {base_url}metrics: Prometheus text, claude-nb's metrics and Jupyter's own together.

Jupyter Server already answers `{base_url}metrics` from prometheus_client's process-global
registry. Extension routes are matched before Jupyter's own, so this handler takes the path
over and serves both: Jupyter's families first (unchanged, so existing scrapes keep working),
then ours from their private registry (ours never enter the global one). Ours need the token;
if the operator set `c.ServerApp.authenticate_prometheus = False`, an anonymous scrape still
gets Jupyter's families, as before the extension was installed.

GET {base_url}v1/usage/quota: the plan quota the CLI reported (see claude_nb.service.quota).
"""
from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from tornado import web

from ..metrics import CONTENT_TYPE
from .base import ApiHandler, api_method
from .status import UnknownRouteHandler


def _jupyter_metrics() -> str:
    try:
        import prometheus_client
    except ImportError:          # jupyter_server depends on it; be safe all the same
        return ""
    return prometheus_client.generate_latest(prometheus_client.REGISTRY).decode("utf-8")


class MetricsHandler(ApiHandler):
    def allows_anonymous(self) -> bool:
        # as Jupyter's own /metrics: c.ServerApp.authenticate_prometheus = False opens it
        return not self.settings.get("authenticate_prometheus", True)

    @allow_unauthenticated
    @api_method
    async def get(self):
        text = _jupyter_metrics()
        if not self.anonymous:
            if not self.authorizer.is_authorized(self, self.current_user, "read", self.auth_resource):
                raise web.HTTPError(403)
            text += self.app.metrics.expose()
        self.set_status(200)
        self.finish(text, set_content_type=CONTENT_TYPE)     # APIHandler would say JSON


class QuotaHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        self.write_json(self.service.quota.snapshot())
def route_of(handler) -> str:
    """The route a request matched, without base_url and with its ids as {names}
    (`/v1/messages/batches/{batch_id}`), so the metric's label set stays small."""
    if isinstance(handler, UnknownRouteHandler):
        return "/v1/{unknown}"        # never one series per mistyped path
    path = handler.request.path
    base = handler.base_url.rstrip("/")
    if base and path.startswith(base):
        path = path[len(base):]
    # path_kwargs is unset when Tornado refused the request before decoding the path
    path_kwargs = getattr(handler, "path_kwargs", None) or {}
    for name, value in sorted(path_kwargs.items(), key=lambda kv: -len(str(kv[1]))):
        at = path.rfind(str(value)) if value else -1     # ids come last in our routes
        if at >= 0:
            path = path[:at] + "{" + name + "}" + path[at + len(str(value)):]
    return path or "/"


def record_request_metrics(web_app, metrics) -> None:
    """Count every request our handlers answer, through the app's log function (the hook
    Jupyter itself records its own request metrics in), so no handler has to remember to."""
    previous = web_app.settings.get("log_function")

    def log_function(handler):
        if previous is not None:
            previous(handler)
        if isinstance(handler, ApiHandler):
            metrics.observe_request(route_of(handler), handler.request.method, handler.get_status(),
                                    handler.request.request_time())
    web_app.settings["log_function"] = log_function
