"""DataFrame views: batch results joined to their inputs, and tidy usage and cost reports.

The reports come from the Admin API's endpoints (GET /v1/organizations/usage_report/messages
and /v1/organizations/cost_report) on the Jupyter server, or from the same computation
in-process when there is no server. One row per time bucket and group, ready for
`df.pivot_table(...)` or `df.plot(...)`.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from .errors import ClaudeError
from .transports import default_transport

USAGE_PATH = "v1/organizations/usage_report/messages"
COST_PATH = "v1/organizations/cost_report"
USAGE_NUMBERS = ("uncached_input_tokens", "cache_creation_5m_input_tokens",
                 "cache_creation_1h_input_tokens", "cache_read_input_tokens", "output_tokens",
                 "web_search_requests")
BUCKET = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
DEFAULT_BUCKETS = {"1m": 60, "1h": 24, "1d": 7}
RESULT_COLUMNS = ("text", "status", "input_tokens", "output_tokens", "cost_usd", "error")


# -- batch results --------------------------------------------------------------------------
def _result_row(item: dict, model: str | None) -> dict:
    from ..protocol.pricing import estimate_cost
    result = item.get("result") or {}
    kind = result.get("type") or "missing"
    row = {"text": None, "status": kind, "input_tokens": None, "output_tokens": None,
           "cost_usd": None, "error": None}
    if kind == "succeeded":
        message = result.get("message") or {}
        usage = message.get("usage") or {}
        row["text"] = "".join(b.get("text", "") for b in message.get("content") or []
                              if b.get("type") == "text")
        row["input_tokens"] = usage.get("input_tokens")
        row["output_tokens"] = usage.get("output_tokens")
        row["cost_usd"] = estimate_cost(message.get("model") or model or "", usage)
    elif kind == "errored":
        envelope = result.get("error") or {}
        err = envelope.get("error") if isinstance(envelope.get("error"), dict) else envelope
        row["error"] = f"{err.get('type', 'error')}: {err.get('message', '')}"
    elif kind in ("canceled", "expired"):
        row["error"] = f"request {kind} before it was answered"
    else:
        row["error"] = "no result for this request"
    return row


def results_frame(results: list[dict], inputs=None, *, model: str | None = None):
    """Batch results (in input order) as a DataFrame, joined to the inputs when given."""
    import pandas as pd
    rows = [_result_row(item, model) for item in results]
    out = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    out["input_tokens"] = out["input_tokens"].astype("Int64")
    out["output_tokens"] = out["output_tokens"].astype("Int64")
    out["cost_usd"] = out["cost_usd"].astype("float64")
    if inputs is None or len(inputs) != len(out):
        out.index = pd.Index([item.get("custom_id") for item in results], name="custom_id")
        return out
    taken = {str(c) for c in inputs.columns}
    out.columns = [c + "_claude" if c in taken else c for c in out.columns]
    out.index = inputs.index
    return pd.concat([inputs, out], axis=1)


# -- reports --------------------------------------------------------------------------------
def _timestamp(value) -> str | None:
    """datetime / date / pandas Timestamp / RFC 3339 string -> RFC 3339 in UTC."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime) or hasattr(value, "to_pydatetime"):
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00Z")
    raise ClaudeError(f"Not a time: {value!r}. Give a datetime, a date or an RFC 3339 string.",
                      status=400, type="invalid_request_error")


def _default_start(width: str) -> str:
    now = datetime.now(timezone.utc)
    step = BUCKET[width]
    floor = {"1d": now.replace(hour=0, minute=0, second=0, microsecond=0),
             "1h": now.replace(minute=0, second=0, microsecond=0),
             "1m": now.replace(second=0, microsecond=0)}[width]
    return _timestamp(floor - step * (DEFAULT_BUCKETS[width] - 1))


def _fetch_pages(path: str, query: dict) -> list[dict]:
    """Every bucket of a report, following `next_page` (the reports have no SDK paging)."""
    transport = default_transport()
    buckets, page = [], None
    for _ in range(10_000):
        params = {**query, "page": page}
        body = transport.report(path, params)
        buckets += body.get("data") or []
        page = body.get("next_page")
        if not body.get("has_more") or not page:
            return buckets
    raise ClaudeError("The report kept asking for more pages; stopped.", status=500)


def _bucket_times(bucket: dict):
    import pandas as pd
    return pd.Timestamp(bucket["starting_at"]), pd.Timestamp(bucket["ending_at"])


def usage_report(starting_at=None, ending_at=None, *, bucket_width: str = "1d",
                 group_by=("model",), models=None, limit: int | None = None):
    """Token usage as a tidy DataFrame: one row per time bucket and group.

    Columns: starting_at, ending_at, the `group_by` dimensions (model, service_tier,
    context_window, ...), then uncached_input_tokens, cache_creation_5m_input_tokens,
    cache_creation_1h_input_tokens, cache_read_input_tokens, output_tokens, web_search_requests.
    Defaults: the last 7 days (1d), 24 hours (1h) or 60 minutes (1m), grouped by model.
    """
    import pandas as pd
    if bucket_width not in BUCKET:
        raise ClaudeError("bucket_width must be '1d', '1h' or '1m'.", status=400,
                          type="invalid_request_error")
    group_by = [group_by] if isinstance(group_by, str) else list(group_by or [])
    query = {"starting_at": _timestamp(starting_at) or _default_start(bucket_width),
             "ending_at": _timestamp(ending_at), "bucket_width": bucket_width,
             "group_by": group_by or None, "limit": limit,
             "models": [models] if isinstance(models, str) else models}
    rows = []
    for bucket in _fetch_pages(USAGE_PATH, query):
        start, end = _bucket_times(bucket)
        for result in bucket.get("results") or []:
            cache = result.get("cache_creation") or {}
            tools = result.get("server_tool_use") or {}
            row = {"starting_at": start, "ending_at": end}
            row.update({g: result.get(g) for g in group_by})
            row.update({
                "uncached_input_tokens": result.get("uncached_input_tokens") or 0,
                "cache_creation_5m_input_tokens": cache.get("ephemeral_5m_input_tokens") or 0,
                "cache_creation_1h_input_tokens": cache.get("ephemeral_1h_input_tokens") or 0,
                "cache_read_input_tokens": result.get("cache_read_input_tokens") or 0,
                "output_tokens": result.get("output_tokens") or 0,
                "web_search_requests": tools.get("web_search_requests") or 0})
            rows.append(row)
    columns = ["starting_at", "ending_at", *group_by, *USAGE_NUMBERS]
    frame = pd.DataFrame(rows, columns=columns)
    for name in USAGE_NUMBERS:
        frame[name] = frame[name].astype("int64")
    return frame


def cost_report(starting_at=None, ending_at=None, *, group_by=("description",),
                limit: int | None = None):
    """Cost as a tidy DataFrame: one row per day and group, `cost_usd` in dollars.

    Columns: starting_at, ending_at, the `group_by` dimensions (grouping by description also
    fills cost_type, model, service_tier, context_window and token_type), cost_usd, currency.
    The API's `amount` is a decimal string in cents; cost_usd is it divided by 100.
    """
    import pandas as pd
    group_by = [group_by] if isinstance(group_by, str) else list(group_by or [])
    query = {"starting_at": _timestamp(starting_at) or _default_start("1d"),
             "ending_at": _timestamp(ending_at), "bucket_width": "1d",
             "group_by": group_by or None, "limit": limit}
    dims = list(group_by)
    if "description" in group_by:
        dims += [d for d in ("cost_type", "model", "service_tier", "context_window", "token_type")
                 if d not in dims]
    rows = []
    for bucket in _fetch_pages(COST_PATH, query):
        start, end = _bucket_times(bucket)
        for item in bucket.get("results") or []:
            row = {"starting_at": start, "ending_at": end}
            row.update({d: item.get(d) for d in dims})
            row["cost_usd"] = float(item.get("amount") or 0) / 100
            row["currency"] = item.get("currency") or "USD"
            rows.append(row)
    return pd.DataFrame(rows, columns=["starting_at", "ending_at", *dims, "cost_usd", "currency"])
