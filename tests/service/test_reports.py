"""Usage and cost reports: the Admin API's parameters and shapes, summing exactly to the ledger."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from claude_nb.service import reports
from claude_nb.bridge import RunRecord
from claude_nb.protocol.errors import InvalidRequest
from claude_nb.service.store import DB_NAME, Store

DAY = 86400
AUG1 = datetime(2025, 8, 1, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / DB_NAME)
    yield s
    s.close()


def record(store, at, *, model="claude-sonnet-5", cost=0.1, inp=10, out=5, read=0, c5m=0, c1h=0,
           web=0, source="api", tier="standard"):
    store.record_run(RunRecord(
        request_id="req_x", source=source, model=model, started_at=at, duration_ms=100,
        cost_usd=cost, usage={"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read,
                              "cache_creation": {"ephemeral_5m_input_tokens": c5m,
                                                 "ephemeral_1h_input_tokens": c1h},
                              "server_tool_use": {"web_search_requests": web}, "service_tier": tier}))


def all_pages(fn, store, **kw):
    """Follow next_page the way a client must (has_more, then next_page)."""
    pages, page = [], None
    while True:
        report = fn(store, page=page, **kw)
        pages.append(report)
        if not report["has_more"]:
            assert report["next_page"] is None
            return pages
        page = report["next_page"]
        assert page.startswith("page_")


# -- usage -------------------------------------------------------------------------------------
def test_usage_buckets_are_whole_utc_days_and_sum_each_days_runs(store):
    record(store, AUG1 + 100, inp=10, out=5, read=3, c5m=7, c1h=11, web=2)
    record(store, AUG1 + DAY - 1, inp=1, out=1)
    record(store, AUG1 + DAY, inp=100, out=50)
    report = reports.usage_report(store, starting_at="2025-08-01T13:45:00Z",
                                  ending_at="2025-08-04T00:00:00Z")
    assert [b["starting_at"] for b in report["data"]] == [
        "2025-08-01T00:00:00.000000Z", "2025-08-02T00:00:00.000000Z", "2025-08-03T00:00:00.000000Z"]
    assert report["data"][0]["ending_at"] == "2025-08-02T00:00:00.000000Z"
    assert report["has_more"] is False and report["next_page"] is None
    first, second, third = (b["results"] for b in report["data"])
    assert first == [{"uncached_input_tokens": 11,
                      "cache_creation": {"ephemeral_1h_input_tokens": 11, "ephemeral_5m_input_tokens": 7},
                      "cache_read_input_tokens": 3, "output_tokens": 6,
                      "server_tool_use": {"web_search_requests": 2},
                      "api_key_id": None, "workspace_id": None, "model": None,
                      "service_tier": None, "context_window": None}]
    assert second[0]["uncached_input_tokens"] == 100 and third == []


def test_usage_grouped_by_model_and_filtered_by_models(store):
    record(store, AUG1 + 10, model="claude-sonnet-5", out=5)
    record(store, AUG1 + 20, model="claude-haiku-4-5-20251001", out=7)
    record(store, AUG1 + 30, model="claude-sonnet-5", out=1)
    report = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=1,
                                  group_by=["model"])
    results = report["data"][0]["results"]
    assert [(r["model"], r["output_tokens"]) for r in results] == [
        ("claude-haiku-4-5-20251001", 7), ("claude-sonnet-5", 6)]
    assert all(r["workspace_id"] is None and r["api_key_id"] is None for r in results)
    only = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=1, models=["sonnet"])
    assert only["data"][0]["results"][0]["output_tokens"] == 6
    assert only["data"][0]["results"][0]["model"] is None        # filtered, not grouped


def test_usage_dimensions_service_tier_and_context_window(store):
    record(store, AUG1 + 10, inp=150_000, read=60_000)
    record(store, AUG1 + 20, inp=1000)
    report = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=1,
                                  group_by=["context_window", "service_tier", "workspace_id"])
    results = report["data"][0]["results"]
    assert [(r["context_window"], r["service_tier"], r["workspace_id"]) for r in results] == [
        ("0-200k", "standard", None), ("200k-1M", "standard", None)]
    long_only = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=1,
                                     context_window=["200k-1M"])
    assert long_only["data"][0]["results"][0]["uncached_input_tokens"] == 150_000
    assert reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=1,
                                workspace_ids=["wrkspc_x"])["data"][0]["results"] == []


@pytest.mark.parametrize("width, default, maximum, seconds", [
    ("1d", 7, 31, DAY), ("1h", 24, 168, 3600), ("1m", 60, 1440, 60)])
def test_bucket_counts_default_and_max_per_width(store, width, default, maximum, seconds):
    far_end = "2030-01-01T00:00:00Z"
    report = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", ending_at=far_end,
                                  bucket_width=width)
    assert len(report["data"]) == default and report["has_more"]
    starts = [datetime.fromisoformat(b["starting_at"].replace("Z", "+00:00")).timestamp()
              for b in report["data"]]
    assert starts[1] - starts[0] == seconds
    full = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", ending_at=far_end,
                                bucket_width=width, limit=maximum)
    assert len(full["data"]) == maximum
    with pytest.raises(InvalidRequest, match="limit: "):
        reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", bucket_width=width,
                             limit=maximum + 1)


def test_pages_add_up_to_exactly_the_recorded_runs(store):
    costs = [0.1, 0.2, 0.3, 0.000123456789, 1e-07, 0.7]
    for i, cost in enumerate(costs):
        record(store, AUG1 + i * 3600 * 7 + 5, cost=cost, inp=i + 1, out=2 * i)
    kw = dict(starting_at="2025-08-01T00:00:00Z", ending_at="2025-08-03T00:00:00Z")
    usage_pages = all_pages(reports.usage_report, store, bucket_width="1h", limit=5, **kw)
    assert len(usage_pages) == 10                          # 48 hourly buckets, 5 a page
    buckets = [b for p in usage_pages for b in p["data"]]
    assert len(buckets) == 48 and len({b["starting_at"] for b in buckets}) == 48
    items = [r for b in buckets for r in b["results"]]
    assert sum(r["uncached_input_tokens"] for r in items) == sum(i + 1 for i in range(6))
    assert sum(r["output_tokens"] for r in items) == sum(2 * i for i in range(6))

    cost_pages = all_pages(reports.cost_report, store, limit=1, **kw)
    amounts = [Decimal(r["amount"]) for p in cost_pages for b in p["data"] for r in b["results"]]
    expected = sum(Decimal(repr(c)) for c in costs) * 100
    assert sum(amounts) == expected                        # exact, no float drift
    assert [b["results"][0]["amount"] for p in cost_pages for b in p["data"]] == \
        ["60.0123456789", "70.00001"]                      # where a float sum gives 60.01234567890001


def test_without_ending_at_buckets_run_up_to_now(store):
    now = AUG1 + 2.5 * DAY
    report = reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", now=now)
    assert len(report["data"]) == 3 and not report["has_more"]


# -- cost --------------------------------------------------------------------------------------
def test_cost_amounts_are_cents_as_decimal_strings(store):
    record(store, AUG1 + 10, cost=0.0123)
    record(store, AUG1 + 20, cost=1.5)
    report = reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", limit=2)
    [item] = report["data"][0]["results"]
    assert item == {"amount": "151.23", "currency": "USD", "workspace_id": None, "description": None,
                    "cost_type": None, "model": None, "service_tier": None, "context_window": None,
                    "token_type": None}
    assert report["data"][1]["results"] == []


def test_cost_by_description_splits_each_run_and_still_sums_exactly(store):
    record(store, AUG1 + 10, cost=0.000587, inp=25, out=12, read=100, c5m=40, c1h=3)
    record(store, AUG1 + 20, model="claude-haiku-4-5-20251001", cost=0.00003, inp=10, out=4)
    report = reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", limit=1,
                                 group_by=["description"])
    results = report["data"][0]["results"]
    assert sum(Decimal(r["amount"]) for r in results) == Decimal("0.0617")
    sonnet = {r["token_type"]: r for r in results if r["model"] == "claude-sonnet-5"}
    assert set(sonnet) == {"uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                           "cache_creation.ephemeral_5m_input_tokens",
                           "cache_creation.ephemeral_1h_input_tokens"}
    out = sonnet["output_tokens"]
    assert out["description"] == "Claude Sonnet 5 Usage - Output Tokens"
    assert (out["cost_type"], out["currency"], out["service_tier"], out["context_window"]) == \
        ("tokens", "USD", "standard", "0-200k")
    # output tokens cost 5x input tokens at list price: the split follows it
    assert Decimal(out["amount"]) / 12 == pytest.approx(
        Decimal(sonnet["uncached_input_tokens"]["amount"]) / 25 * 5, rel=Decimal("1e-9"))
    haiku = [r for r in results if r["model"] == "claude-haiku-4-5-20251001"]
    assert sum(Decimal(r["amount"]) for r in haiku) == Decimal("0.003")
    assert {r["description"] for r in haiku} == {"Claude Haiku 4.5 Usage - Input Tokens",
                                                 "Claude Haiku 4.5 Usage - Output Tokens"}


def test_cost_report_is_daily_only(store):
    with pytest.raises(InvalidRequest, match="daily buckets only"):
        reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", bucket_width="1h")
    with pytest.raises(InvalidRequest, match="limit: "):
        reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", limit=32)
    with pytest.raises(InvalidRequest, match="group_by: 'model'"):
        reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", group_by=["model"])


# -- query strings -----------------------------------------------------------------------------
def test_query_strings_as_the_sdk_sends_them(store):
    record(store, AUG1 + 10, model="claude-sonnet-5", out=3)
    record(store, AUG1 + 10, model="claude-opus-4-8", out=4)
    query = {"starting_at": [b"2025-08-01T00:00:00Z"], "ending_at": [b"2025-08-02T00:00:00Z"],
             "group_by[]": [b"model"], "models[]": [b"claude-opus-4-8", b"claude-sonnet-5"],
             "limit": [b"3"], "beta": [b"true"]}
    report = reports.usage_report_from_query(store, query)
    assert [(r["model"], r["output_tokens"]) for r in report["data"][0]["results"]] == [
        ("claude-opus-4-8", 4), ("claude-sonnet-5", 3)]
    cost = reports.cost_report_from_query(store, {"starting_at": "2025-08-01T00:00:00Z",
                                                  "ending_at": "2025-08-02T00:00:00Z",
                                                  "group_by": "workspace_id,description"})
    assert len(cost["data"]) == 1 and len(cost["data"][0]["results"]) == 4


@pytest.mark.parametrize("query, message", [
    ({}, "starting_at: Field required"),
    ({"starting_at": "yesterday"}, "starting_at: 'yesterday' is not an RFC 3339 timestamp"),
    ({"starting_at": "2025-08-02T00:00:00Z", "ending_at": "2025-08-01T00:00:00Z"},
     "ending_at: must be after starting_at"),
    ({"starting_at": "2025-08-01T00:00:00Z", "bucket_width": "1w"}, "bucket_width: '1w'"),
    ({"starting_at": "2025-08-01T00:00:00Z", "group_by[]": ["colour"]}, "group_by: 'colour'"),
    ({"starting_at": "2025-08-01T00:00:00Z", "page": "page_bm9wZQ=="}, "page: "),
    ({"starting_at": "2025-08-01T00:00:00Z", "page": "page_MjAyNS0wNy0wMVQwMDowMDowMFo="}, "page: "),
    ({"starting_at": "2025-08-01T00:00:00Z", "limit": "many"}, "limit: "),
    ({"starting_at": "2025-08-01T00:00:00Z", "color": "red"}, "color: unknown query parameter"),
    ({"starting_at": ["2025-08-01T00:00:00Z", "2025-08-02T00:00:00Z"]}, "starting_at: give one value"),
])
def test_bad_report_queries_are_400_naming_the_parameter(store, query, message):
    with pytest.raises(InvalidRequest) as info:
        reports.usage_report_from_query(store, query)
    assert info.value.message.startswith(message), info.value.message


def test_rows_flatten_a_report_for_dataframes(store):
    record(store, AUG1 + 10, cost=0.25, c5m=4)
    usage = reports.rows(reports.usage_report(store, starting_at="2025-08-01T00:00:00Z", limit=2))
    assert len(usage) == 1 and usage[0]["cache_creation.ephemeral_5m_input_tokens"] == 4
    assert usage[0]["starting_at"] == "2025-08-01T00:00:00.000000Z"
    cost = reports.rows(reports.cost_report(store, starting_at="2025-08-01T00:00:00Z", limit=1))
    assert cost[0]["amount"] == Decimal("25")


# -- the ledger is fed by real runs ------------------------------------------------------------
async def test_real_runs_through_the_cli_show_up_in_both_reports(bridge, upstream, store):
    store.attach(bridge)
    for prompt in ("one", "two"):
        await bridge.create({"model": "sonnet", "max_tokens": 20,
                             "messages": [{"role": "user", "content": prompt}]}, source="magic")
    runs = store.runs_between()
    assert [r.source for r in runs] == ["magic", "magic"] and all(r.cost_usd > 0 for r in runs)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
    usage = reports.usage_report(store, starting_at=today, limit=1, group_by=["model"])
    [item] = usage["data"][0]["results"]
    assert item["model"] == runs[0].model
    assert (item["uncached_input_tokens"], item["output_tokens"]) == (2 * 25, 2 * 12)  # the upstream's counts
    cost = reports.cost_report(store, starting_at=today, limit=1)
    assert Decimal(cost["data"][0]["results"][0]["amount"]) == \
        sum(Decimal(repr(r.cost_usd)) for r in runs) * 100
