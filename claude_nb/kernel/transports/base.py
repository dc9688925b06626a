"""The one interface every transport gives, and the only one its callers use."""
from __future__ import annotations

from ..errors import ClaudeError


class Transport:
    """Where requests go. Every caller (client, magics, batch jobs, reports, quota) uses only
    these methods, never the transport's type."""

    kind = ""

    def stream(self, body: dict, *, source: str = "client", session: str | None = None):
        """-> (events, request_id, abort): the Anthropic stream events, the request id if known
        yet, and a thread-safe callable that stops the request.

        session: a chat's key; the CLI process that answered is kept for the chat's next turn."""
        raise NotImplementedError

    def end_session(self, session: str) -> None:
        """The chat was reset: its kept process can go."""

    def cost_of(self, request_id, model, usage) -> tuple[float | None, bool]:
        from ...protocol.pricing import estimate_cost
        return estimate_cost(model, usage), True

    def describe(self) -> str:
        return self.kind

    def models(self) -> list[dict]:
        """Every model on offer, as `GET /v1/models` lists them."""
        raise NotImplementedError

    def batches(self):
        """The Message Batches API: an object with create, retrieve, cancel, progress, results."""
        raise ClaudeError(f"Batches are not available through {self.describe()}.", status=400)

    def report(self, path: str, params: dict) -> dict:
        """One page of `GET {path}` (the usage or cost report) for these query parameters."""
        raise ClaudeError(f"Reports are not available through {self.describe()}.")

    def quota(self) -> dict:
        """The plan quota, as `GET /v1/usage/quota` answers."""
        raise NotImplementedError

    def cli_status(self) -> dict:
        """The answering CLI: found, version and supported window, warnings, logged in."""
        raise NotImplementedError

    def sdk_endpoint(self) -> tuple[str, str] | None:
        """(base URL, API key) for the official SDK, when this transport is a server."""
        return None
