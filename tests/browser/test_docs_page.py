"""The docs page at {base_url}claude_nb/docs, in Chromium: it sits behind Jupyter's login,
renders every route of v1/openapi.json with its examples, and its "try it" form gets an answer
from the real Claude Code CLI (against the recording fake upstream) with the page's own Jupyter
session: the cookie and the XSRF header, no token in the request.

The module's Jupyter server and Chromium are the shared ones of conftest.py (skipped, saying so,
where Chromium is absent); set CLAUDE_NB_TEST_SCREENSHOTS to a folder to keep the page's pictures.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SCREENSHOT_DIR = os.environ.get("CLAUDE_NB_TEST_SCREENSHOTS")


@pytest.fixture
def new_page(browser, request):
    """`new_page(**context_options)` -> a page in a fresh browser context (no Jupyter session);
    a failing test leaves its screenshot (conftest.py)."""
    contexts = []

    def make(**options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        request.node.browser_pages = getattr(request.node, "browser_pages", []) + [page]
        return page

    yield make
    for context in contexts:
        context.close()


def _screenshot(page, name):
    if SCREENSHOT_DIR:
        Path(SCREENSHOT_DIR).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / name), full_page=False)


def test_the_page_needs_the_jupyter_login(new_page, jupyter):
    page = new_page()
    page.goto(jupyter.url + "claude_nb/docs")
    assert "/login" in page.url                      # Jupyter's login page, not the docs
    script = page.request.get(jupyter.url + "claude_nb/docs/docs.js", max_redirects=0)
    assert script.status in (302, 403)
    assert "SERVER_URL" not in script.text()


def test_the_page_renders_every_route_and_try_it_answers(new_page, jupyter, upstream_for_browser):
    server_url, upstream = jupyter.url, upstream_for_browser
    page = new_page(viewport={"width": 1280, "height": 900})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server_url) else None)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server_url}claude_nb/docs?token={jupyter.token}")       # Jupyter's token login
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert not errors, errors
    assert not outside, f"the page loaded something from outside the server: {outside}"
    _screenshot(page, "docs-top.png")

    # Every route of the document has its section, examples and form.
    document = jupyter.api("GET", "v1/openapi.json")
    for path, item in document["paths"].items():
        for method, op in item.items():
            section = page.locator(f"#op-{op['operationId']}")
            assert section.count() == 1, op["operationId"]
            assert section.get_attribute("data-path") == path
            sample = section.locator("pre.sample").inner_text()
            assert sample.startswith("curl ") and server_url.rstrip("/") in sample
    assert page.locator("#server-url").inner_text() == server_url
    # the per-field support, as the document says it
    temperature = page.locator("#op-messages_create tr[data-field=temperature] .badge")
    assert temperature.inner_text() == "ignored"
    stops = page.locator("#op-messages_create tr[data-field=stop_sequences] .badge")
    assert stops.inner_text() == "emulated"
    page.locator("#op-messages_create table.fields").scroll_into_view_if_needed()
    _screenshot(page, "docs-fields.png")

    # Try it: POST /v1/messages with the example body, sent with the page's session only.
    op = page.locator("#op-messages_create")
    op.locator("details.try-it summary").click()
    body = op.locator("textarea[name=body]")
    example = json.loads(body.input_value())
    example["messages"][0]["content"] = "Hello from the docs page"
    body.fill(json.dumps(example))
    with page.expect_request(lambda r: r.url.endswith("/v1/messages")) as sent:
        op.locator("button.send").click()
    headers = sent.value.all_headers()
    assert "x-xsrftoken" in headers and headers["x-xsrftoken"]
    assert "authorization" not in headers and "x-api-key" not in headers
    op.locator(".status.ok, .status.bad").wait_for(timeout=120_000)
    page.wait_for_function("s => !document.querySelector(s).disabled",
                           arg="#op-messages_create button.send", timeout=120_000)
    assert op.locator(".status").inner_text().startswith("200")
    answer = op.locator("pre.response").inner_text()
    assert "You said: Hello from the docs page" in answer
    assert "request-id: req_" in answer
    assert upstream.message_requests[-1].user_texts()[-1] == "Hello from the docs page"
    op.scroll_into_view_if_needed()
    _screenshot(page, "docs-try-it.png")

    # ... and streaming: the events arrive in the form as they come.
    example["stream"] = True
    example["messages"][0]["content"] = "Stream it"
    body.fill(json.dumps(example))
    op.locator("button.send").click()
    page.wait_for_function(
        "s => document.querySelector(s).textContent.includes('event: message_stop')",
        arg="#op-messages_create pre.response", timeout=120_000)
    streamed = op.locator("pre.response").inner_text()
    assert "content-type: text/event-stream" in streamed
    events = [json.loads(line[len("data: "):]) for line in streamed.splitlines()
              if line.startswith("data: ")]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta"
                   and e["delta"]["type"] == "text_delta")
    assert text == "You said: Stream it"

    # A bad request shows the envelope, not a broken page.
    body.fill('{"model": "sonnet", "messages": []}')
    op.locator("button.send").click()
    page.wait_for_function("s => document.querySelector(s).textContent.startsWith('400')",
                           arg="#op-messages_create .status", timeout=30_000)
    assert "invalid_request_error" in op.locator("pre.response").inner_text()
