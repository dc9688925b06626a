"""Usage and cost reports, shaped like the Admin API's, computed from the store's run ledger.

Every CLI run (API requests, batch requests, magics) is one `RunRow` with its own reported
tokens and cost. The reports bucket those rows by time and sum them, so they add up exactly
to what was recorded: costs are summed as decimals (from each float's shortest repr), never as
floats. Pure functions over `Store.runs_between`; the HTTP handlers and the notebook's
DataFrames both call them.

Dimensions: `api_key_id` and `workspace_id` are always null (there is one user and no
workspaces: the real API also says null for the default workspace); `model`, `service_tier`
(as the CLI reported it) and `context_window` (from the run's input size) are filled in when
grouped by. As in the real API, a dimension is null in every result unless grouped by.
"""
from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Mapping

from ..protocol.pricing import estimate_cost
from ..protocol.errors import InvalidRequest
from ..protocol.models import ids_for_name
from ..protocol.paging import parse_limit
from ..protocol.times import parse_rfc3339, rfc3339
from .store import RunRow, Store

BUCKET_SECONDS = {"1m": 60, "1h": 3600, "1d": 86400}
# bucket width -> (default, max) bucket count per page, as the real API has them.
USAGE_LIMITS = {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)}
COST_LIMITS = {"1d": (7, 31)}
USAGE_DIMENSIONS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window")
COST_DIMENSIONS = ("workspace_id", "description")
COST_ITEM_FIELDS = ("workspace_id", "description", "cost_type", "model", "service_tier",
                    "context_window", "token_type")
LONG_CONTEXT_TOKENS = 200_000

# token_type -> (description suffix, usage key, RunRow attribute)
TOKEN_TYPES = (
    ("uncached_input_tokens", "Input Tokens", "input_tokens", "uncached_input_tokens"),
    ("output_tokens", "Output Tokens", "output_tokens", "output_tokens"),
    ("cache_read_input_tokens", "Input Tokens (Cache Read)", "cache_read_input_tokens",
     "cache_read_input_tokens"),
    ("cache_creation.ephemeral_5m_input_tokens", "Input Tokens (5m Cache Write)",
     "cache_creation_5m", "cache_creation_5m_tokens"),
    ("cache_creation.ephemeral_1h_input_tokens", "Input Tokens (1h Cache Write)",
     "cache_creation_1h", "cache_creation_1h_tokens"),
)


# -- what a run looks like along each dimension ---------------------------------------------
def context_window(run: RunRow) -> str:
    total = (run.uncached_input_tokens + run.cache_read_input_tokens
             + run.cache_creation_5m_tokens + run.cache_creation_1h_tokens)
    return "200k-1M" if total > LONG_CONTEXT_TOKENS else "0-200k"


def _dimension(run: RunRow, name: str):
    if name == "model":
        return run.model
    if name == "service_tier":
        return run.service_tier or "standard"
    if name == "context_window":
        return context_window(run)
    return None        # api_key_id, workspace_id: no keys or workspaces here


def cost_cents(run: RunRow) -> Decimal:
    """The run's recorded cost in cents, exactly as the float's shortest decimal form says."""
    return Decimal(repr(float(run.cost_usd))) * 100


def _format_amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


# -- query parameters -----------------------------------------------------------------------
def _values(query: Mapping, name: str) -> list[str]:
    """All values of `name`, `name[]` (the SDK's array style) and comma-joined lists."""
    out: list[str] = []
    for key in (name, name + "[]"):
        raw = query.get(key)
        if raw is None:
            continue
        for item in ([raw] if isinstance(raw, (str, bytes)) else raw):
            if isinstance(item, bytes):
                item = item.decode("utf-8", "replace")
            out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def _one(query: Mapping, name: str) -> str | None:
    values = _values(query, name)
    if len(values) > 1:
        raise InvalidRequest(f"{name}: give one value, not {len(values)}")
    return values[0] if values else None


def _starting_at(query: Mapping) -> str:
    """Both reports require it."""
    starting_at = _one(query, "starting_at")
    if starting_at is None:
        raise InvalidRequest("starting_at: Field required (an RFC 3339 timestamp)")
    return starting_at


def _limit(value, width: str, table: dict) -> int:
    default, maximum = table[width]
    return parse_limit(value, default=default, maximum=maximum, context=f"with bucket_width {width}")


def _page_token(ts: float) -> str:
    return "page_" + base64.b64encode(rfc3339(ts).encode()).decode()


def _page_start(token: str, first: float, width: int) -> float:
    try:
        text = base64.b64decode(token[5:], validate=True).decode() if token.startswith("page_") else ""
        ts = parse_rfc3339(text, "page").timestamp() if text else None
    except (binascii.Error, UnicodeDecodeError, InvalidRequest):
        ts = None
    if ts is None or ts < first or (ts - first) % width:
        raise InvalidRequest(f"page: {token!r} is not a `next_page` value of this report")
    return ts


class _Window:
    """The buckets one page of a report covers."""

    def __init__(self, starting_at, ending_at, width_name: str, limit: int, page: str | None,
                 now: float | None):
        width = BUCKET_SECONDS[width_name]
        start = parse_rfc3339(starting_at, "starting_at").timestamp()
        first = start - start % width      # buckets snap to the minute/hour/UTC day
        if ending_at is not None:
            end = parse_rfc3339(ending_at, "ending_at").timestamp()
            if end <= start:
                raise InvalidRequest("ending_at: must be after starting_at")
        else:
            end = datetime.now(timezone.utc).timestamp() if now is None else now
        begin = _page_start(page, first, width) if page else first
        self.starts = []
        bucket = begin
        while bucket < end and len(self.starts) < limit:
            self.starts.append(bucket)
            bucket += width
        self.width = width
        self.has_more = bucket < end and bool(self.starts)
        self.next_page = _page_token(bucket) if self.has_more else None

    @property
    def span(self) -> tuple[float, float]:
        if not self.starts:
            return 0.0, 0.0
        return self.starts[0], self.starts[-1] + self.width

    def bucket_of(self, ts: float) -> float:
        first = self.starts[0]
        return first + (ts - first) // self.width * self.width


def _check_choice(values: list[str], allowed: Iterable[str], name: str) -> list[str]:
    allowed = tuple(allowed)
    for v in values:
        if v not in allowed:
            raise InvalidRequest(f"{name}: {v!r} is not one of {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def _model_filter(models) -> set[str] | None:
    if not models:
        return None
    # The ledger holds full ids; accept the CLI's aliases too (whatever CLI ran them).
    return set().union(*(ids_for_name(m) for m in models))


# -- usage ----------------------------------------------------------------------------------
def usage_report(store: Store, *, starting_at, ending_at=None, bucket_width: str = "1d",
                 group_by: Iterable[str] = (), models: Iterable[str] | None = None,
                 api_key_ids=None, workspace_ids=None, service_tiers=None, context_window=None,
                 limit: int | None = None, page: str | None = None,
                 now: float | None = None) -> dict:
    """GET /v1/organizations/usage_report/messages. Times are RFC 3339 strings or datetimes."""
    if bucket_width not in BUCKET_SECONDS:
        raise InvalidRequest(f"bucket_width: {bucket_width!r} should be one of '1d', '1h', '1m'")
    group_by = _check_choice(list(group_by or ()), USAGE_DIMENSIONS, "group_by")
    window = _Window(starting_at, ending_at, bucket_width,
                     _limit(limit, bucket_width, USAGE_LIMITS), page, now)
    filters = {"model": _model_filter(models), "api_key_id": api_key_ids,
               "workspace_id": workspace_ids, "service_tier": service_tiers,
               "context_window": context_window}
    sums: dict[float, dict[tuple, dict]] = defaultdict(dict)
    for run in _runs(store, window, filters):
        key = tuple(_dimension(run, d) for d in group_by)
        item = sums[window.bucket_of(run.started_at)].setdefault(key, _empty_usage())
        item["uncached_input_tokens"] += run.uncached_input_tokens
        item["cache_creation"]["ephemeral_5m_input_tokens"] += run.cache_creation_5m_tokens
        item["cache_creation"]["ephemeral_1h_input_tokens"] += run.cache_creation_1h_tokens
        item["cache_read_input_tokens"] += run.cache_read_input_tokens
        item["output_tokens"] += run.output_tokens
        item["server_tool_use"]["web_search_requests"] += run.web_search_requests
    data = []
    for start in window.starts:
        results = []
        for key, item in sorted(sums.get(start, {}).items(), key=_sort_key):
            dims = dict.fromkeys(USAGE_DIMENSIONS)
            dims.update(zip(group_by, key))
            results.append({**item, **dims})
        data.append({"starting_at": rfc3339(start), "ending_at": rfc3339(start + window.width),
                     "results": results})
    return {"data": data, "has_more": window.has_more, "next_page": window.next_page}


def _empty_usage() -> dict:
    return {"uncached_input_tokens": 0,
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "cache_read_input_tokens": 0, "output_tokens": 0,
            "server_tool_use": {"web_search_requests": 0}}


def _sort_key(entry):
    return tuple((v is not None, str(v)) for v in entry[0])


def _runs(store: Store, window: _Window, filters: dict) -> list[RunRow]:
    if not window.starts:
        return []
    start, end = window.span
    runs = store.runs_between(start, end, models=filters.pop("model", None))
    for name, wanted in filters.items():
        if wanted:
            wanted = set(wanted)
            runs = [r for r in runs if _dimension(r, name) in wanted]
    return runs


def usage_report_from_query(store: Store, query: Mapping, *, now: float | None = None) -> dict:
    """The same, from the query string (`name` or `name[]` keys, values str or list)."""
    _reject_unknown(query, {"starting_at", "ending_at", "bucket_width", "group_by", "models",
                            "api_key_ids", "workspace_ids", "service_tiers", "context_window",
                            "limit", "page"})
    starting_at = _starting_at(query)
    return usage_report(
        store, starting_at=starting_at, ending_at=_one(query, "ending_at"),
        bucket_width=_one(query, "bucket_width") or "1d", group_by=_values(query, "group_by"),
        models=_values(query, "models") or None, api_key_ids=_values(query, "api_key_ids") or None,
        workspace_ids=_values(query, "workspace_ids") or None,
        service_tiers=_values(query, "service_tiers") or None,
        context_window=_values(query, "context_window") or None,
        limit=_one(query, "limit"), page=_one(query, "page"), now=now)


def _reject_unknown(query: Mapping, known: set[str]) -> None:
    for key in query:
        name = key[:-2] if key.endswith("[]") else key
        if name not in known and name != "beta":      # SDKs <= 2.2 add ?beta=true
            raise InvalidRequest(f"{name}: unknown query parameter; expected one of "
                                 f"{', '.join(sorted(known))}")


# -- cost -----------------------------------------------------------------------------------
def cost_report(store: Store, *, starting_at, ending_at=None, bucket_width: str = "1d",
                group_by: Iterable[str] = (), workspace_ids=None, limit: int | None = None,
                page: str | None = None, now: float | None = None) -> dict:
    """GET /v1/organizations/cost_report: daily buckets, `amount` in cents as a decimal string."""
    if bucket_width != "1d":
        raise InvalidRequest(f"bucket_width: the cost report has daily buckets only ('1d'), "
                             f"not {bucket_width!r}")
    group_by = _check_choice(list(group_by or ()), COST_DIMENSIONS, "group_by")
    window = _Window(starting_at, ending_at, bucket_width,
                     _limit(limit, bucket_width, COST_LIMITS), page, now)
    by_description = "description" in group_by
    sums: dict[float, dict[tuple, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for run in _runs(store, window, {"workspace_id": workspace_ids}):
        bucket = sums[window.bucket_of(run.started_at)]
        if by_description:
            for token_type, cents in split_cost(run):
                bucket[_cost_key(run, token_type)] += cents
        else:
            bucket[()] += cost_cents(run)
    data = []
    for start in window.starts:
        results = []
        for key, cents in sorted(sums.get(start, {}).items(), key=_sort_key):
            item = {"amount": _format_amount(cents), "currency": "USD",
                    **dict.fromkeys(COST_ITEM_FIELDS)}
            item.update(dict(key))
            results.append(item)
        data.append({"starting_at": rfc3339(start), "ending_at": rfc3339(start + window.width),
                     "results": results})
    return {"data": data, "has_more": window.has_more, "next_page": window.next_page}


def _cost_key(run: RunRow, token_type: str) -> tuple:
    label = next(t[1] for t in TOKEN_TYPES if t[0] == token_type)
    return (("workspace_id", None), ("description", f"{_display_name(run.model)} Usage - {label}"),
            ("cost_type", "tokens"), ("model", run.model),
            ("service_tier", run.service_tier or "standard"),
            ("context_window", context_window(run)), ("token_type", token_type))


def _display_name(model: str) -> str:
    from ..protocol.models import model_entry
    try:
        return model_entry(model).display_name     # retired models keep their names
    except Exception:
        return model


def split_cost(run: RunRow) -> list[tuple[str, Decimal]]:
    """The run's recorded cost (cents) split over its token types in proportion to their list
    prices. The CLI reports one total; the parts always add up to exactly that total."""
    total = cost_cents(run)
    weights = []
    for token_type, _label, usage_key, attr in TOKEN_TYPES:
        tokens = getattr(run, attr)
        if not tokens:
            continue
        usage = ({"cache_creation": {"ephemeral_5m_input_tokens": tokens}}
                 if usage_key == "cache_creation_5m" else
                 {"cache_creation": {"ephemeral_1h_input_tokens": tokens}}
                 if usage_key == "cache_creation_1h" else {usage_key: tokens})
        weights.append((token_type, Decimal(repr(estimate_cost(run.model, usage)))))
    weight_sum = sum((w for _, w in weights), Decimal(0))
    if not weights or weight_sum == 0:
        return [("uncached_input_tokens", total)] if total else []
    parts, given = [], Decimal(0)
    for token_type, weight in weights[:-1]:
        share = (total * weight / weight_sum).quantize(Decimal("1e-12"))
        parts.append((token_type, share))
        given += share
    parts.append((weights[-1][0], total - given))
    return parts


def cost_report_from_query(store: Store, query: Mapping, *, now: float | None = None) -> dict:
    _reject_unknown(query, {"starting_at", "ending_at", "bucket_width", "group_by",
                            "workspace_ids", "limit", "page"})
    starting_at = _starting_at(query)
    return cost_report(
        store, starting_at=starting_at, ending_at=_one(query, "ending_at"),
        bucket_width=_one(query, "bucket_width") or "1d", group_by=_values(query, "group_by"),
        workspace_ids=_values(query, "workspace_ids") or None, limit=_one(query, "limit"),
        page=_one(query, "page"), now=now)


# -- for DataFrames -------------------------------------------------------------------------
def rows(report: dict) -> list[dict]:
    """One flat dict per (bucket, result): nested fields joined with "." (cache_creation...),
    cost amounts as Decimal cents. Empty buckets give no rows."""
    out = []
    for bucket in report["data"]:
        for result in bucket["results"]:
            row = {"starting_at": bucket["starting_at"], "ending_at": bucket["ending_at"]}
            for key, value in result.items():
                if isinstance(value, dict):
                    row.update({f"{key}.{k}": v for k, v in value.items()})
                elif key == "amount":
                    row[key] = Decimal(value)
                else:
                    row[key] = value
            out.append(row)
    return out
