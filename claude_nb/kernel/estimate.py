"""What a DataFrame call will cost before anything is sent: `df.claude.estimate(...)`.

- input tokens: counted offline (claude_nb.protocol.tokens) on each request as built, plus
  what the Claude Code CLI adds to every request (its system prompt parts, the environment
  note, the structured-output tool): CLI_OVERHEAD_TOKENS, measured against the recording
  upstream with CLI 2.1.332 (see bench/frames.py --overhead);
- output tokens: a hard bound (rows x max_tokens) and an expected range for the kind of
  answer asked for (a label, a yes/no, the fields of a schema, free text);
- cost: list prices of the chosen model (claude_nb.bridge.pricing) over those numbers;
- requests the result cache already holds cost nothing and are left out of every number;
- time: the requests still to run, `concurrency` at a time, each taking a start-up second plus
  its output at a typical generation speed;
- the plan quota where the CLI has reported it (subscription logins): how much of each
  window is used now. Anthropic does not publish plan sizes in tokens, so the share this
  call would take of a window is not known and is left None.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..protocol.errors import AnthropicError
from ..protocol.models import resolve_model
from ..protocol.pricing import estimate_cost
from ..protocol.tokens import count_request_tokens, count_text
from .errors import ClaudeError

# Input tokens the CLI adds to each request on top of the request's own (billing header, agent
# line, environment note): measured with CLI 2.1.332 against the recording upstream.
CLI_OVERHEAD_TOKENS = 285
# The StructuredOutput tool's description and wrapper, on top of the schema's own tokens.
STRUCTURED_TOOL_TOKENS = 120
START_SECONDS = 1.0              # a process answering (warm start plus first token), typical
TOKENS_PER_SECOND = (40.0, 80.0)  # generation speed, slow and fast end


class CostLimitExceeded(ClaudeError):
    """The estimate is above `max_cost_usd`: nothing was sent."""

    def __init__(self, estimate: "Estimate", limit: float):
        super().__init__(
            f"Not sent: the estimated cost is up to ${estimate.cost_usd:.4f} "
            f"(expected ${estimate.cost_usd_range[0]:.4f}-${estimate.cost_usd_range[1]:.4f}, at "
            f"most ${estimate.cost_usd_max:.4f} if every answer used max_tokens) for "
            f"{estimate.requests_to_send} request(s) to {estimate.model}, above "
            f"max_cost_usd=${limit:.4f}. Raise max_cost_usd, lower max_tokens, use fewer rows "
            "or a cheaper model.", status=400, type="invalid_request_error")
        self.estimate = estimate
        self.limit = limit


@dataclass
class Estimate:
    """The numbers of one DataFrame call, before it runs. `cost_usd` is what `max_cost_usd` is
    checked against: the upper end of the expected range."""
    model: str
    rows: int
    cached_rows: int
    requests_to_send: int
    input_tokens: int
    output_tokens_max: int
    output_tokens_expected: tuple[int, int]
    cost_usd: float
    cost_usd_range: tuple[float, float]
    cost_usd_max: float
    seconds_expected: tuple[float, float]
    concurrency: int
    quota_share: float | None = None
    quota: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        low, high = self.output_tokens_expected
        lines = [
            f"{self.rows} rows, {self.cached_rows} answered from the cache (free), "
            f"{self.requests_to_send} to send to {self.model}",
            f"input tokens:  {self.input_tokens:,} (counted)",
            f"output tokens: {low:,}-{high:,} expected, at most {self.output_tokens_max:,}",
            f"cost:          ${self.cost_usd_range[0]:.4f}-${self.cost_usd_range[1]:.4f} expected, "
            f"at most ${self.cost_usd_max:.4f}",
            f"time:          {_duration(self.seconds_expected[0])}-"
            f"{_duration(self.seconds_expected[1])} at {self.concurrency} at once",
        ]
        if self.quota:
            used = ", ".join(f"{name} {value * 100:.0f}% used" for name, value in self.quota.items()
                             if value is not None)
            lines.append("plan quota:    " + (used or "reported, no utilisation yet")
                         + " (this call's share is not known: plan sizes are not published)")
        else:
            lines.append("plan quota:    not reported (API-key login, or no request yet)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Estimate {self.model}: ${self.cost_usd:.4f} for {self.requests_to_send} requests>"

    def _repr_markdown_(self) -> str:
        return "**Estimate**\n\n```\n" + str(self) + "\n```"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def expected_output(kind: str, max_tokens: int, *, schema: dict | None = None,
                    labels=None) -> tuple[int, int]:
    """Expected output tokens per answer, low and high, for the kind of answer."""
    if kind == "classify":
        longest = max((count_text(str(label)) for label in labels or [""]), default=1)
        low, high = 10 + longest, 40 + 2 * longest
    elif kind == "filter":
        low, high = 10, 40
    elif kind == "extract":
        skeleton = count_text(str(schema or {}))
        low, high = 15 + skeleton // 2, 60 + 2 * skeleton
    else:
        low, high = 40, 600
    return min(low, max_tokens), min(high, max_tokens)


def estimate_requests(requests: list[dict], *, kind: str, cached: list[bool], concurrency: int,
                      schema: dict | None = None, labels=None, quota: dict | None = None) -> Estimate:
    """The estimate for these built requests (`{"custom_id", "params"}` as a batch takes them)."""
    if not requests:
        raise ClaudeError("Nothing to estimate: no rows.", status=400, type="invalid_request_error")
    params = [r["params"] for r in requests]
    model = params[0]["model"]
    try:
        model_id = resolve_model(model).id
    except AnthropicError as exc:
        raise ClaudeError.wrap(exc) from None
    to_send = [p for p, hit in zip(params, cached) if not hit]
    per_request = CLI_OVERHEAD_TOKENS + (STRUCTURED_TOOL_TOKENS if schema is not None else 0)
    input_tokens = sum(count_request_tokens(p) + per_request
                       + (count_text(str(schema)) if schema is not None else 0) for p in to_send)
    output_max = sum(int(p["max_tokens"]) for p in to_send)
    max_tokens = max((int(p["max_tokens"]) for p in params), default=0)
    low, high = expected_output(kind, max_tokens, schema=schema, labels=labels)
    n = len(to_send)
    cost_low = estimate_cost(model_id, {"input_tokens": input_tokens, "output_tokens": low * n})
    cost_high = estimate_cost(model_id, {"input_tokens": input_tokens, "output_tokens": high * n})
    cost_max = estimate_cost(model_id, {"input_tokens": input_tokens, "output_tokens": output_max})
    rounds = math.ceil(n / max(1, concurrency))
    seconds = (rounds * (START_SECONDS + low / TOKENS_PER_SECOND[1]),
               rounds * (START_SECONDS + high / TOKENS_PER_SECOND[0]))
    return Estimate(model=model_id, rows=len(requests), cached_rows=len(requests) - n,
                    requests_to_send=n, input_tokens=input_tokens, output_tokens_max=output_max,
                    output_tokens_expected=(low * n, high * n), cost_usd=round(cost_high, 6),
                    cost_usd_range=(round(cost_low, 6), round(cost_high, 6)),
                    cost_usd_max=round(cost_max, 6), seconds_expected=seconds,
                    concurrency=concurrency, quota=quota or {})


def plan_quota() -> dict:
    """window -> utilisation (0..1 or None) as the CLI last reported it; {} when unknown."""
    try:
        from .quota import PLAN_WINDOW, quota
        snapshot = quota()
    except Exception:          # the quota is a nicety: never fail an estimate over it
        return {}
    if snapshot.status == "unknown":
        return {}
    return {w.get("label") or name: w.get("utilization")
            for name, w in snapshot.windows.items() if w.get("window") != PLAN_WINDOW}
