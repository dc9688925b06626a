"""GET /v1/models and /v1/models/{id}: one list that answers the Anthropic and OpenAI SDKs."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized

from claude_nb.bridge.cli_models import cli_models_async
from claude_nb.protocol.errors import AnthropicError, InvalidRequest
from claude_nb.protocol.models import list_models, model_entry
from claude_nb.protocol.paging import id_page

from .base import ApiHandler, api_method
from .paging import cursor_arguments, query_list


async def _learn_aliases(handler: ApiHandler) -> None:
    """Aliases as the installed CLI resolves them (learned once per binary); without a CLI the
    catalogue keeps the newest measured table."""
    try:
        path = handler.bridge.cli_executable()
    except AnthropicError:
        return
    await cli_models_async(path)


class ModelsHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self):
        lifecycles = query_list(self, "lifecycle")
        bad = [v for v in lifecycles if v not in ("active", "deprecated", "retired")]
        if bad:
            raise InvalidRequest(f"lifecycle: {bad[0]!r} should be 'active', 'deprecated' or 'retired'")
        models = [m.to_json() for m in list_models(lifecycles or None)]
        self.write_json({"object": "list", **id_page(models, **cursor_arguments(self))})


class ModelHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self, model_id: str):
        # An alias answers with the model it resolves to, as the API does; a retired model
        # stays in the catalogue as the record of its retirement.
        await _learn_aliases(self)
        self.write_json(model_entry(model_id).to_json())
