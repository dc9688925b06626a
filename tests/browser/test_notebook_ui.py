"""The notebooks as a person sees them: JupyterLab 4 and Notebook 7 in Chromium, against a real
Jupyter server with the extension, the real CLI and the recording upstream.

One server and one browser serve the whole module (see conftest.py); each test opens its own
page and its kernels end with it.
"""
from __future__ import annotations

import re

import pytest

from tests.browser.upstream_script import (CHAT_ANSWER, CHAT_PROMPT, CODE_PROMPT, SLOW_CHAT_ANSWER,
                                           SLOW_CHAT_PROMPT, STREAMED_PROMPT)
from tests.support.http import parse_prometheus

# Collects every distinct text the output area of one cell shows, as the page renders it.
RECORD_RENDERS = """(cell) => {
  window.__renders = [];
  const area = cell.querySelector('.jp-Cell-outputArea');
  const note = () => {
    const md = area.querySelector('.jp-RenderedMarkdown');
    const text = md ? md.innerText : '';
    const seen = window.__renders;
    if (text && (seen.length === 0 || seen[seen.length - 1] !== text)) seen.push(text);
  };
  new MutationObserver(note).observe(area, {subtree: true, childList: true, characterData: true});
}"""


def test_quickstart_runs_top_to_bottom(open_notebook, upstream_for_browser):
    nb = open_notebook("quickstart.ipynb", ui="lab")
    nb.run_all()
    assert nb.error_outputs.count() == 0, "a cell wrote to stderr or raised"
    kernel_answer = nb.outputs(nb.code_cell("what is a Jupyter kernel"))
    assert kernel_answer.count() == 1
    assert "You said: In two sentences: what is a Jupyter kernel?" in kernel_answer.inner_text()
    assert nb.outputs(nb.code_cell("capital", exact=True)).inner_text().strip() == \
        "'You said: What is the capital of France?'"
    assert nb.outputs(nb.code_cell('mars["moons"]')).inner_text().strip() == "2"
    status = nb.outputs(nb.code_cell("%claude status")).inner_text()
    assert "Jupyter server at http" in status
    # every prompt of the notebook reached the upstream, through the server's CLI processes
    prompts = [r.user_texts()[-1] for r in upstream_for_browser.message_requests]
    for expected in ("What is the capital of France?", "What is my favourite number?",
                     "Say hello in French."):
        assert expected in prompts


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_claude_answer_grows_then_ends_whole_as_markdown(ui, open_notebook, scratch_notebook,
                                                        upstream_for_browser):
    path = scratch_notebook(f"streaming-{ui}.ipynb", ["%load_ext claude_nb",
                                                      f"%%claude\n{STREAMED_PROMPT}"])
    nb = open_notebook(path, ui=ui)
    nb.run_cell(nb.code_cell("%load_ext"))
    cell = nb.code_cell("%%claude")
    cell.evaluate(RECORD_RENDERS)
    nb.run_cell(cell)
    renders = nb.page.evaluate("window.__renders")
    final = renders[-1]
    # seen growing: several distinct partial renders, each shorter than the whole answer
    partial = renders[:-1]
    assert len(partial) >= 3, renders
    assert all(len(text) < len(final) for text in partial)
    assert len({len(text) for text in partial}) == len(partial)
    # ends whole, and as Markdown: bold, italics and a list, not the raw asterisks
    output = nb.outputs(cell)
    assert output.count() == 1
    markdown = cell.locator(".jp-OutputArea-output.jp-RenderedMarkdown")
    assert markdown.locator("strong").inner_text() == "kernel"
    assert markdown.locator("em").inner_text() == "variables"
    assert markdown.locator("li").all_inner_texts() == [
        "it keeps your variables between cells", "it sends results back to the page",
        "each notebook has its own"]
    assert "**" not in final and final.rstrip().endswith("restart it and the state is gone.")
    sent = [r for r in upstream_for_browser.message_requests if r.user_texts()[-1] == STREAMED_PROMPT]
    assert len(sent) == 1
    nb.screenshot(f"streamed-answer-{ui}")


def test_chat_widget_answers_once_and_stop_leaves_nothing_behind(open_notebook, scratch_notebook,
                                                                jupyter, upstream_for_browser):
    path = scratch_notebook("chat.ipynb", ["import claude_nb\npanel = claude_nb.chat()\npanel"])
    nb = open_notebook(path, ui="lab")
    cell = nb.code_cell("claude_nb.chat()")
    nb.run_cell(cell)
    transcript = cell.locator(".widget-html-content").first
    send = cell.get_by_role("button", name="Send")
    stop = cell.get_by_role("button", name="Stop")
    box = cell.locator("textarea")

    # one question, one answer: the reply settles, with no second, empty "Claude ▍" below it
    box.fill(CHAT_PROMPT)
    send.click()
    nb.page.wait_for_function("([node, answer]) => node.innerText.includes(answer)",
                              arg=[transcript.element_handle(), CHAT_ANSWER], timeout=60_000)
    cell.locator(".widget-label", has_text=" in / ").wait_for(timeout=30_000)  # usage: it ended
    nb.page.wait_for_function("(node) => !node.innerText.includes('▍')",
                              arg=transcript.element_handle(), timeout=10_000)
    assert _turns(transcript) == [("You", CHAT_PROMPT), ("Claude", CHAT_ANSWER)]
    assert send.is_enabled() and stop.is_disabled()
    nb.screenshot("chat-answered")

    # a long answer, stopped while it streams: what came stays, nothing keeps running
    box.fill(SLOW_CHAT_PROMPT)
    send.click()
    nb.page.wait_for_function(
        "(node) => node.innerText.includes('there was a notebook')",
        arg=transcript.element_handle(), timeout=60_000)
    stop.click()
    cell.get_by_text("stopped", exact=True).wait_for(timeout=30_000)
    nb.page.wait_for_function("(node) => !node.innerText.includes('▍')",
                              arg=transcript.element_handle(), timeout=10_000)
    turns = _turns(transcript)
    assert [who for who, _ in turns] == ["You", "Claude", "You", "Claude"]
    stopped = turns[-1][1]
    assert stopped.startswith("Once upon a time") and len(stopped) < len(SLOW_CHAT_ANSWER)
    assert send.is_enabled() and stop.is_disabled()
    _wait_until_idle(jupyter, nb)
    assert _turns(transcript)[-1][1] == stopped           # and it did not go on growing
    # the kernel agrees: not busy, and the chat remembers the stopped answer as it was shown
    check = nb.run_new_cell("print(panel.busy, len(panel.conversation), "
                            "panel.conversation[-1]['content'] == " + repr(stopped) + ")")
    assert nb.output_text(check).strip() == "False 4 True"
    nb.screenshot("chat-stopped")


def test_batch_notebook_shows_progress_and_chart(open_notebook, upstream_for_browser):
    nb = open_notebook("batch_analysis.ipynb", ui="lab")
    nb.menu("Run", "Run All Cells")
    wait_cell = nb.code_cell("job.wait()")
    progress = wait_cell.locator(".widget-hprogress")
    progress.wait_for(timeout=120_000)                    # the bar, while the batch runs
    # and beside it how many are answered so far, read through the server (the Batches API's
    # own counts stay at "processing" until the batch ends)
    wait_cell.locator(".widget-label", has_text=re.compile(r"^[0-7]/8 answered · \d+ s$")).wait_for()
    wait_cell.scroll_into_view_if_needed()
    nb.screenshot("batch-progress")
    nb.wait_all_ran()
    assert nb.error_outputs.count() == 0, "a cell wrote to stderr or raised"
    # the bar made way for its summary
    assert progress.count() == 0
    assert re.search(r"Batch msgbatch_\w+ ended in \d+ s: 8 succeeded",
                     nb.output_text(wait_cell))
    chart = nb.outputs(nb.code_cell("matplotlib")).locator("img")
    chart.wait_for()
    box = chart.bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    nb.screenshot("batch-chart")


def test_code_format_offers_the_code_to_copy(open_notebook, scratch_notebook, upstream_for_browser):
    path = scratch_notebook("code.ipynb", ["%load_ext claude_nb",
                                           f"%%claude --format code\n{CODE_PROMPT}"])
    nb = open_notebook(path, ui="lab")
    nb.run_cell(nb.code_cell("%load_ext"))
    cell = nb.code_cell("--format code")
    output = nb.run_cell(cell)
    code = "def add(a, b):\n    return a + b"
    assert output.locator("pre code").inner_text() == code
    assert "VS Code and Colab" in output.inner_text()          # it says where the code is
    copy = output.get_by_role("button", name="Copy")
    copy.click()
    output.get_by_role("button", name="Copied").wait_for(timeout=5_000)
    assert nb.page.evaluate("navigator.clipboard.readText()") == code
    # JupyterLab honours set_next_input as well: the code is also the next cell
    next_cell = nb.cells.nth(nb.cells.count() - 1)
    assert next_cell.locator(".cm-content").inner_text() == code
    nb.screenshot("code-format")


# -- helpers --------------------------------------------------------------------------------------
def _turns(transcript) -> list[tuple[str, str]]:
    """The chat panel's turns as (who, text)."""
    return [(turn.locator("b").inner_text(), turn.locator("div").inner_text())
            for turn in transcript.locator(":scope > div").all()]


def _wait_until_idle(jupyter, nb, timeout_ms: int = 30_000) -> None:
    """Until the server holds no CLI slot and runs no CLI process for a request."""
    def idle() -> bool:
        metrics = parse_prometheus(jupyter.text("metrics"))
        active = metrics.get(("claude_nb_active_requests", frozenset()), 0)
        live = metrics.get(("claude_nb_cli_processes", frozenset({("state", "live")})), 0)
        return active == 0 and live == 0
    for _ in range(timeout_ms // 200):
        if idle():
            return
        nb.page.wait_for_timeout(200)
    raise AssertionError("the server still works on the stopped answer")
