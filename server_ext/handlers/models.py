"""GET /v1/models and /v1/models/{id}: one list that answers the Anthropic and OpenAI SDKs."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized

from claude_nb.protocol.errors import InvalidRequest
from claude_nb.protocol.models import list_models, resolve_model

from .base import ApiHandler, api_method
from .paging import id_page, query_list


class ModelsHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        lifecycles = query_list(self, "lifecycle")
        bad = [v for v in lifecycles if v not in ("active", "deprecated", "retired")]
        if bad:
            raise InvalidRequest(f"lifecycle: {bad[0]!r} should be 'active', 'deprecated' or 'retired'")
        models = [m.to_json() for m in list_models(lifecycles or None)]
        self.write_json({"object": "list", **id_page(self, models)})


class ModelHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self, model_id: str):
        self.write_json(resolve_model(model_id).to_json())
