"""The docs page at {base_url}claude_nb/docs, in headless Chromium: it sits behind Jupyter's
login, renders every route of v1/openapi.json with its examples, and its "try it" form gets an
answer from the real Claude Code CLI (against the recording fake upstream) with the page's own
Jupyter session: the cookie and the XSRF header, no token in the request.

Uses Debian's Chromium (`apt-get install chromium`) through Playwright's Python API; skipped,
saying so, where Chromium is absent. Its small fixture should later give way to the shared
browser harness in tests/browser/ (issue 17).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CLAUDE_NB_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT_DIR = os.environ.get("CLAUDE_NB_TEST_SCREENSHOTS")     # set to keep the page's pictures

async_playwright = pytest.importorskip("playwright.async_api").async_playwright
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"Chromium not found at {CHROMIUM}: apt-get install chromium "
                                       "(or set CLAUDE_NB_TEST_CHROMIUM)")


@pytest.fixture
def browser(jp_asyncio_loop):
    """A headless Chromium driven from the test's event loop, where the Jupyter server runs too."""
    playwright = jp_asyncio_loop.run_until_complete(async_playwright().start())
    try:
        chromium = jp_asyncio_loop.run_until_complete(
            playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS))
        yield chromium
        jp_asyncio_loop.run_until_complete(chromium.close())
    finally:
        jp_asyncio_loop.run_until_complete(playwright.stop())


@pytest.fixture
def server_url(jp_fetch, claude_app, http_server_port, jp_base_url):
    return f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}"


async def _screenshot(page, name):
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SCREENSHOT_DIR) / name), full_page=False)


async def test_the_page_needs_the_jupyter_login(browser, server_url, cli_env):
    page = await (await browser.new_context()).new_page()
    await page.goto(server_url + "claude_nb/docs")
    assert "/login" in page.url                      # Jupyter's login page, not the docs
    script = await page.request.get(server_url + "claude_nb/docs/docs.js", max_redirects=0)
    assert script.status in (302, 403)
    assert "SERVER_URL" not in await script.text()


async def test_the_page_renders_every_route_and_try_it_answers(browser, server_url, token, cli_env,
                                                                upstream, jp_fetch):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server_url) else None)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{server_url}claude_nb/docs?token={token}")       # Jupyter's token login
    await page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert not errors, errors
    assert not outside, f"the page loaded something from outside the server: {outside}"
    await _screenshot(page, "docs-top.png")

    # Every route of the document has its section, examples and form.
    document = json.loads((await jp_fetch("v1", "openapi.json")).body)
    for path, item in document["paths"].items():
        for method, op in item.items():
            section = page.locator(f"#op-{op['operationId']}")
            assert await section.count() == 1, op["operationId"]
            assert await section.get_attribute("data-path") == path
            sample = await section.locator("pre.sample").inner_text()
            assert sample.startswith("curl ") and server_url.rstrip("/") in sample
    assert await page.locator("#server-url").inner_text() == server_url
    # the per-field support, as the document says it
    temperature = page.locator("#op-messages_create tr[data-field=temperature] .badge")
    assert await temperature.inner_text() == "ignored"
    stops = page.locator("#op-messages_create tr[data-field=stop_sequences] .badge")
    assert await stops.inner_text() == "emulated"
    await page.locator("#op-messages_create table.fields").scroll_into_view_if_needed()
    await _screenshot(page, "docs-fields.png")

    # Try it: POST /v1/messages with the example body, sent with the page's session only.
    op = page.locator("#op-messages_create")
    await op.locator("details.try-it summary").click()
    body = op.locator("textarea[name=body]")
    example = json.loads(await body.input_value())
    example["messages"][0]["content"] = "Hello from the docs page"
    await body.fill(json.dumps(example))
    async with page.expect_request(lambda r: r.url.endswith("/v1/messages")) as sent:
        await op.locator("button.send").click()
    request = await sent.value
    headers = await request.all_headers()
    assert "x-xsrftoken" in headers and headers["x-xsrftoken"]
    assert "authorization" not in headers and "x-api-key" not in headers
    await op.locator(".status.ok, .status.bad").wait_for(timeout=120_000)
    await page.wait_for_function("s => !document.querySelector(s).disabled",
                                 arg="#op-messages_create button.send", timeout=120_000)
    assert (await op.locator(".status").inner_text()).startswith("200")
    answer = await op.locator("pre.response").inner_text()
    assert "You said: Hello from the docs page" in answer
    assert "request-id: req_" in answer
    assert upstream.message_requests[-1].user_texts()[-1] == "Hello from the docs page"
    await op.scroll_into_view_if_needed()
    await _screenshot(page, "docs-try-it.png")

    # ... and streaming: the events arrive in the form as they come.
    example["stream"] = True
    example["messages"][0]["content"] = "Stream it"
    await body.fill(json.dumps(example))
    await op.locator("button.send").click()
    await page.wait_for_function(
        "s => document.querySelector(s).textContent.includes('event: message_stop')",
        arg="#op-messages_create pre.response", timeout=120_000)
    streamed = await op.locator("pre.response").inner_text()
    assert "content-type: text/event-stream" in streamed
    events = [json.loads(line[len("data: "):]) for line in streamed.splitlines()
              if line.startswith("data: ")]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta"
                   and e["delta"]["type"] == "text_delta")
    assert text == "You said: Stream it"

    # A bad request shows the envelope, not a broken page.
    await body.fill('{"model": "sonnet", "messages": []}')
    await op.locator("button.send").click()
    await page.wait_for_function("s => document.querySelector(s).textContent.startsWith('400')",
                                 arg="#op-messages_create .status", timeout=30_000)
    assert "invalid_request_error" in await op.locator("pre.response").inner_text()
    await context.close()

