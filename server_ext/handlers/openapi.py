"""GET {base_url}v1/openapi.json (the API's OpenAPI document) and {base_url}claude_nb/docs (the
same document for a person, with a "try it" form).

The document is `claude_nb.protocol.openapi.build_document`; the page is three files shipped in
`server_ext/docs_page/` (no asset from outside the server: many Jupyter deployments are offline).
The page sits behind Jupyter's login like the rest of Jupyter; its requests use the browser's
session (cookie + `X-XSRFToken`), as Jupyter's own pages do.
"""
from __future__ import annotations

import functools
import html
import json
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from claude_nb import __version__
from claude_nb.protocol.openapi import build_document

from .base import AUTH_RESOURCE, ApiHandler, api_method

PAGE_DIR = Path(__file__).resolve().parent.parent / "docs_page"
# name -> content type: the only files the page route serves
PAGE_ASSETS = {"docs.js": "text/javascript; charset=utf-8", "docs.css": "text/css; charset=utf-8"}


@functools.lru_cache(maxsize=8)
def document_text(server_url: str) -> str:
    """The document as JSON, built once per URL the server is reached by."""
    return json.dumps(build_document(server_url=server_url, version=__version__),
                      ensure_ascii=False)


def server_url(handler) -> str:
    """This server's absolute base URL as the client reached it (base_url included)."""
    return f"{handler.request.protocol}://{handler.request.host}{handler.base_url}"


class OpenAPIHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(document_text(server_url(self)))


class PageHandler(ExtensionHandlerMixin, JupyterHandler):
    """A page of ours: Jupyter's login redirect for a browser without a session, and every
    error in the API's envelope like the rest of the extension's routes."""

    auth_resource = AUTH_RESOURCE
    REQUEST_ID_HEADERS = ApiHandler.REQUEST_ID_HEADERS
    _set_request_id = ApiHandler._set_request_id
    error_from = ApiHandler.error_from
    error_body = ApiHandler.error_body
    write_error = ApiHandler.write_error


class DocsPageHandler(PageHandler):
    """The HTML page."""

    @web.authenticated
    @authorized
    def get(self):
        page = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
        values = {"base_url": self.base_url, "xsrf_token": self.xsrf_token.decode("utf-8"),
                  "version": __version__}
        for name, value in values.items():
            page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


class DocsAssetHandler(PageHandler):
    """The page's script and style sheet."""

    @web.authenticated
    @authorized
    def get(self, name: str):
        if name not in PAGE_ASSETS:
            raise web.HTTPError(404, f"{name!r} is not a file of the docs page.")
        self.set_header("Content-Type", PAGE_ASSETS[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish((PAGE_DIR / name).read_bytes())
