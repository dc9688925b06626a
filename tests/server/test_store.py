"""Batches, files and reports served by the Jupyter server, driven by the official SDK."""
import asyncio
import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import anthropic
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from claude_nb.service import files as files_logic
from tests.support.fake_upstream import HoldWhere, Reply


@pytest.fixture
def jp_server_config(jp_server_config):
    return {**jp_server_config,
            "ServerApp": {**jp_server_config.get("ServerApp", {}),
                          "jpserver_extensions": {"server_ext": True}},
            "BatchRunner": {"retry_base_delay": 0.01, "poll_interval": 0.2}}


@pytest.fixture
def sdk_base(jp_fetch, http_server_port, jp_base_url):
    return f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}"


@pytest.fixture
def client(sdk_base, jp_serverapp, cli_env):
    return anthropic.AsyncAnthropic(base_url=sdk_base, api_key=jp_serverapp.identity_provider.token,
                                    max_retries=0)


@pytest.fixture
def app(jp_serverapp):
    return next(iter(jp_serverapp.extension_manager.extension_apps["server_ext"]))


def params(prompt):
    return {"model": "sonnet", "max_tokens": 40, "messages": [{"role": "user", "content": prompt}]}


async def until_ended(client, batch_id, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, "batch did not end in time"
        await asyncio.sleep(0.1)


async def fetch(jp_fetch, *parts, **kw):
    try:
        return await jp_fetch(*parts, **kw)
    except HTTPClientError as err:
        return err.response


# -- batches -----------------------------------------------------------------------------------
async def test_batch_round_trip_through_the_sdk(client, upstream, sdk_base):
    created = await client.messages.batches.create(requests=[
        {"custom_id": f"row-{i}", "params": params(f"question {i}")} for i in range(4)])
    assert created.id.startswith("msgbatch_") and created.processing_status == "in_progress"
    assert created.request_counts.processing == 4 and created.results_url is None
    ended = await until_ended(client, created.id)
    assert ended.request_counts.succeeded == 4 and ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.expires_at > ended.created_at
    # an absolute URL on this server, prefix (the test server's base_url) included
    assert ended.results_url == f"{sdk_base}v1/messages/batches/{created.id}/results"
    results = [r async for r in await client.messages.batches.results(created.id)]
    assert [r.custom_id for r in results] == [f"row-{i}" for i in range(4)]
    assert [r.result.message.content[0].text for r in results] == \
        [f"You said: question {i}" for i in range(4)]
    assert sorted(r.user_texts()[-1] for r in upstream.message_requests) == \
        sorted(f"question {i}" for i in range(4))


async def test_results_are_jsonl_with_one_newline_each(client, jp_fetch, upstream):
    # Every attempt is refused, as the API refuses a bad request (newer CLIs ask twice).
    upstream.responder = lambda rec: Reply.error(400, "invalid_request_error", "messages: scripted refusal")
    batch = await client.messages.batches.create(requests=[{"custom_id": "only", "params": params("x")}])
    await until_ended(client, batch.id)
    resp = await jp_fetch("v1", "messages", "batches", batch.id, "results")
    assert resp.headers["Content-Type"].startswith("application/x-jsonl")
    assert resp.body.endswith(b"\n") and resp.body.count(b"\n") == 1
    line = json.loads(resp.body)
    assert line["custom_id"] == "only" and line["result"]["type"] == "errored"
    assert line["result"]["error"]["type"] == "error"
    assert line["result"]["error"]["error"]["type"] == "invalid_request_error"


async def test_list_pages_newest_first_and_the_sdk_follows_them(client, jp_fetch, app):
    app.batch_runner.workers_per_batch = 1
    ids = []
    for i in range(3):
        ids.append((await client.messages.batches.create(
            requests=[{"custom_id": "a", "params": params(f"list {i}")}])).id)
    page = await client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id async for b in await client.messages.batches.list(limit=1)] == ids[::-1]
    resp = await jp_fetch("v1", "messages", "batches", params={"before_id": ids[0], "limit": "5"})
    assert [b["id"] for b in json.loads(resp.body)["data"]] == ids[::-1][:2]
    for batch_id in ids:
        await until_ended(client, batch_id)


async def test_cancel_and_delete(client, upstream, app):
    app.batch_runner.workers_per_batch = 1
    upstream.push(Reply.text("slow", hang=30))
    batch = await client.messages.batches.create(requests=[
        {"custom_id": f"c{i}", "params": params(f"cancel {i}")} for i in range(3)])
    while not upstream.message_requests:
        await asyncio.sleep(0.05)
    with pytest.raises(anthropic.BadRequestError, match="can be deleted only once it has ended"):
        await client.messages.batches.delete(batch.id)
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = await until_ended(client, batch.id)
    assert ended.request_counts.canceled == 3
    assert [r.result.type async for r in await client.messages.batches.results(batch.id)] == ["canceled"] * 3
    deleted = await client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)


async def test_progress_moves_while_the_api_counts_wait_for_the_end(client, jp_fetch, upstream):
    upstream.responder = held = HoldWhere("held")

    async def progress(batch_id):
        return json.loads((await jp_fetch("claude_nb", "batches", batch_id, "progress")).body)

    batch = await client.messages.batches.create(requests=[
        {"custom_id": "quick", "params": params("quick")}, {"custom_id": "slow", "params": params("held")}])
    deadline = time.monotonic() + 120
    while (now := await progress(batch.id))["answered"] < 1:
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.1)
    try:
        assert now["total"] == 2 and now["answered"] == 1 and now["processing_status"] == "in_progress"
        assert now["counts"]["succeeded"] == 1 and now["counts"]["pending"] + now["counts"]["running"] == 1
        # what the API itself says meanwhile: everything still processing
        assert (await client.messages.batches.retrieve(batch.id)).request_counts.processing == 2
    finally:
        held.release()
    await until_ended(client, batch.id)
    assert (await progress(batch.id))["answered"] == 2
    missing = await fetch(jp_fetch, "claude_nb", "batches", "msgbatch_nope", "progress")
    assert missing.code == 404 and json.loads(missing.body)["error"]["type"] == "not_found_error"


async def test_bad_batches_are_400_naming_the_request(client, upstream):
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.create(requests=[
            {"custom_id": "ok", "params": params("x")},
            {"custom_id": "bad", "params": {**params("y"), "max_tokens": "lots"}}])
    assert "requests.1.params.max_tokens" in info.value.message
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        await client.messages.batches.create(requests=[{"custom_id": "no spaces", "params": params("x")}])
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("msgbatch_nope")
    assert upstream.message_requests == []


async def test_results_before_the_end_are_400(client, jp_fetch, upstream):
    upstream.push(Reply.text("slow", hang=30))
    batch = await client.messages.batches.create(requests=[{"custom_id": "a", "params": params("x")}])
    resp = await fetch(jp_fetch, "v1", "messages", "batches", batch.id, "results")
    assert resp.code == 400 and "still in_progress" in json.loads(resp.body)["error"]["message"]
    await client.messages.batches.cancel(batch.id)
    await until_ended(client, batch.id)


# -- files -------------------------------------------------------------------------------------
async def test_file_round_trip_through_the_sdk(client):
    meta = await client.files.upload(file=("notes.txt", b"line one\nline two\n", "text/plain"))
    assert meta.id.startswith("file_") and meta.type == "file"
    assert (meta.filename, meta.mime_type, meta.size_bytes, meta.downloadable) == \
        ("notes.txt", "text/plain", 18, True)
    assert meta.created_at.tzinfo is not None
    again = await client.files.retrieve_metadata(meta.id)
    assert again.id == meta.id and again.filename == "notes.txt"
    content = await client.files.download(meta.id)
    assert await content.read() == b"line one\nline two\n"
    deleted = await client.files.delete(meta.id)
    assert (deleted.id, deleted.type) == (meta.id, "file_deleted")
    with pytest.raises(anthropic.NotFoundError):
        await client.files.retrieve_metadata(meta.id)


async def test_download_headers_keep_the_browser_from_rendering_uploads(client, jp_fetch):
    meta = await client.files.upload(file=("page.html", b"<script>alert(1)</script>", "text/html"))
    resp = await jp_fetch("v1", "files", meta.id, "content")
    assert resp.body == b"<script>alert(1)</script>"
    assert resp.headers["Content-Type"] == "text/html"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="page.html"')
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


async def test_file_lists_in_both_styles(client, jp_fetch):
    ids = [(await client.files.upload(file=(f"f{i}.txt", b"x", "text/plain"))).id for i in range(5)]
    newest_first = ids[::-1]
    # 2.x SDK: page / next_page
    assert [f.id async for f in await client.files.list(limit=2)] == newest_first
    # 0.x SDK and raw: after_id / has_more / last_id
    body = json.loads((await jp_fetch("v1", "files", params={"limit": "2", "after_id": ids[3]})).body)
    assert [f["id"] for f in body["data"]] == newest_first[2:4] and body["has_more"]
    assert body["last_id"] == ids[1] and body["next_page"].startswith("page_")
    # ids[] filter
    picked = await client.files.list(ids=[ids[0], ids[4]])
    assert {f.id for f in picked.data} == {ids[0], ids[4]} and picked.next_page is None


async def test_upload_mistakes(client, jp_fetch, monkeypatch):
    monkeypatch.setattr(files_logic, "MAX_FILE_BYTES", 1000)
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.files.upload(file=("big.bin", b"x" * 1001, "application/octet-stream"))
    assert info.value.status_code == 413 and info.value.body["error"]["type"] == "request_too_large"
    resp = await fetch(jp_fetch, "v1", "files", method="POST", body=b"{}",
                       headers={"Content-Type": "application/json"})
    assert resp.code == 400 and "multipart/form-data" in json.loads(resp.body)["error"]["message"]
    boundary = "xyz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n"
            f"--{boundary}--\r\n").encode()
    resp = await fetch(jp_fetch, "v1", "files", method="POST", body=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.code == 400 and "`file`" in json.loads(resp.body)["error"]["message"]


@pytest.mark.parametrize("file_id", ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "file_x%00y",
                                     "..", "file_..%2Fclaude_nb.sqlite3", "%2E%2E"])
async def test_file_ids_cannot_escape_the_store(sdk_base, jp_serverapp, app, file_id):
    token = jp_serverapp.identity_provider.token
    http = AsyncHTTPClient()
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        resp = await http.fetch(f"{sdk_base}v1/files/{file_id}{suffix}", method=method,
                                headers={"Authorization": f"Bearer {token}"}, raise_error=False)
        assert resp.code == 404, (file_id, suffix, resp.code, resp.body)
        assert json.loads(resp.body)["error"]["type"] == "not_found_error"
    assert app.store.integrity_check() == "ok"


async def test_a_file_is_usable_in_a_message(client, upstream):
    meta = await client.files.upload(file=("fact.txt", b"The moon is made of basalt.", "text/plain"))
    message = await client.messages.create(model="sonnet", max_tokens=40, messages=[{
        "role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": meta.id}},
            {"type": "text", "text": "What is the moon made of?"}]}])
    assert message.content[0].text == "You said: What is the moon made of?"
    sent = upstream.message_requests[-1]
    blocks = [b for m in sent.messages if isinstance(m["content"], list) for b in m["content"]]
    assert any(b.get("type") == "document" and b["source"].get("data") == "The moon is made of basalt."
               for b in blocks)


# -- reports -----------------------------------------------------------------------------------
async def test_usage_and_cost_reports_sum_the_servers_runs(client, app, upstream):
    for prompt in ("one", "two"):
        await client.messages.create(**params(prompt))
    batch = await client.messages.batches.create(requests=[{"custom_id": "b", "params": params("three")}])
    await until_ended(client, batch.id)
    runs = app.store.runs_between()
    assert sorted(r.source for r in runs) == ["api", "api", "batch"]
    today = datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
    usage = await client.get("/v1/organizations/usage_report/messages", cast_to=object, options={
        "params": {"starting_at": today, "bucket_width": "1d", "limit": 1, "group_by": ["model"]}})
    [item] = usage["data"][0]["results"]
    assert item["model"] == runs[0].model
    assert item["output_tokens"] == sum(r.output_tokens for r in runs) == 36
    assert item["uncached_input_tokens"] == sum(r.uncached_input_tokens for r in runs)
    assert usage["has_more"] is False and usage["next_page"] is None
    cost = await client.get("/v1/organizations/cost_report", cast_to=object,
                            options={"params": {"starting_at": today, "limit": 1}})
    [amount] = [r["amount"] for r in cost["data"][0]["results"]]
    assert Decimal(amount) == sum(Decimal(repr(r.cost_usd)) for r in runs) * 100
    assert cost["data"][0]["results"][0]["currency"] == "USD"


async def test_report_parameter_mistakes_are_400(client):
    with pytest.raises(anthropic.BadRequestError, match="starting_at"):
        await client.get("/v1/organizations/usage_report/messages", cast_to=object)
    with pytest.raises(anthropic.BadRequestError, match="daily buckets only"):
        await client.get("/v1/organizations/cost_report", cast_to=object, options={
            "params": {"starting_at": "2025-08-01T00:00:00Z", "bucket_width": "1h"}})
    with pytest.raises(anthropic.BadRequestError, match="group_by"):
        await client.get("/v1/organizations/usage_report/messages", cast_to=object, options={
            "params": {"starting_at": "2025-08-01T00:00:00Z", "group_by": ["colour"]}})


async def test_health_shows_the_store(jp_fetch, app):
    body = json.loads((await jp_fetch("health")).body)
    assert body["batches"]["store"] == str(app.store.path)
    assert body["batches"]["unfinished"] == 0
