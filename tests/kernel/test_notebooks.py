"""The example notebooks, executed end to end in a real kernel by nbclient.

Each runs against the real CLI and the recording upstream, in-process (a kernel with no
server) and through a Jupyter server running the extension (async tests: nbclient's sync
execute() would block the loop that serves the kernel's requests).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.fake_upstream import Reply

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def responder(rec):
    """Answers that suit each notebook's prompts (the default echo, JSON where asked, ...)."""
    text = rec.user_texts()[-1] if rec.user_texts() else ""
    if "JSON object" in text:
        return Reply.text('{"planet": "Mars", "moons": 2}')
    if "Jupyter kernel" in text:          # slow enough to be seen streaming
        return Reply.text("A kernel runs your code and sends results back to the notebook. "
                          "Each notebook has its own kernel.", delay_per_chunk=0.04)
    if text.startswith("Classify the sentiment"):
        review = text.rsplit("Review: ", 1)[-1].lower()
        if "love" in review:
            return Reply.text("Positive.")
        if "terrible" in review:
            return Reply.text("Negative")
        return Reply.text("mixed")
    return Reply.text("You said: " + text)


class RecordingClient(NotebookClient):
    """Counts the iopub messages of each cell (to see display updates as they stream)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages: dict[int, Counter] = {}

    def process_message(self, msg, cell, cell_index):
        self.messages.setdefault(cell_index, Counter())[msg["msg_type"]] += 1
        return super().process_message(msg, cell, cell_index)


async def execute(name: str, env: dict, workdir: Path) -> tuple:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = RecordingClient(nb, kernel_name="python3", timeout=180, allow_errors=False,
                             resources={"metadata": {"path": str(workdir)}})
    await client.async_execute(env={**env, "PYTHONPATH": str(ROOT)})
    return nb, client


def cell_index(nb, pattern: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and re.search(pattern, cell.source):
            return i
    raise AssertionError(f"no cell matches {pattern!r}")


def outputs(nb, pattern: str, kind: str | None = None) -> list:
    outs = nb.cells[cell_index(nb, pattern)].outputs
    return [o for o in outs if kind is None or o.output_type == kind]


def text_of(nb, pattern: str) -> str:
    parts = []
    for o in outputs(nb, pattern):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"])
    return "".join(parts)


@pytest.fixture
def kernel_env(cli_env, upstream, monkeypatch):
    upstream.responder = responder
    return monkeypatch


def test_notebooks_are_saved_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["batch_analysis.ipynb", "quickstart.ipynb", "sdk.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def check_quickstart(nb, client, upstream, transport: str) -> None:
    # the first answer streamed (updates while the cell ran) and was saved once, whole
    first = cell_index(nb, "what is a Jupyter kernel")
    assert client.messages[first]["update_display_data"] >= 2
    shown = outputs(nb, "what is a Jupyter kernel", "display_data")
    assert len(shown) == 1
    expected = ("A kernel runs your code and sends results back to the notebook. "
                "Each notebook has its own kernel.")
    assert shown[0].data["text/markdown"] == expected == shown[0].data["text/plain"]
    meta = shown[0].metadata["claude_nb"]
    assert meta["transport"] == transport and meta["request_id"]
    assert meta["usage"]["output_tokens"] > 0 and meta["cost_usd"] > 0
    # -o stored the answer; options reached upstream
    assert "You said: What is the capital of France?" in text_of(nb, r"^capital$")
    capital = [r for r in upstream.message_requests if "capital of France" in r.user_texts()[-1]][0]
    assert "haiku" in capital.body["model"] and "Answer with the name only." in capital.system_text()
    # chat memory: the follow-up carried the earlier turn; after reset nothing is carried
    follow = [r for r in upstream.message_requests if r.user_texts()[-1] == "What is my favourite number?"][0]
    assert "My favourite number is 42. Please remember it." in follow.user_texts()
    median = [r for r in upstream.message_requests if "median" in r.user_texts()[-1]][0]
    assert median.user_texts()[-1] == ("What is the median of [3, 1, 4, 1, 5, 9, 2, 6]?\n"
                                       "Also, is this Python valid: squares = {n: n * n for n in range(3)}")
    assert len(median.user_texts()) == 1
    # json format: parsed value stored and shown as JSON
    assert outputs(nb, "--format json", "display_data")[0].data["application/json"] == \
        {"planet": "Mars", "moons": 2}
    assert text_of(nb, r'mars\["moons"\]') == "2"
    # the client API
    assert "You said: Name three prime numbers" in text_of(nb, "claude.message\\(")
    assert text_of(nb, "message_stream") == "You said: Count from one to five in words."
    assert text_of(nb, "claude.answer").startswith("You said: Say hello in French.\nclaude-")
    assert transport in text_of(nb, "%claude status")


async def test_quickstart_in_process_kernel(kernel_env, upstream, tmp_path):
    kernel_env.delenv("CLAUDE_NB_URL", raising=False)
    nb, client = await execute("quickstart.ipynb", dict(os.environ), tmp_path)
    check_quickstart(nb, client, upstream, "in-process")


# -- through a Jupyter server running the extension ---------------------------------------------
@pytest.fixture
def jp_server_config(jp_server_config):
    return {**jp_server_config, "ServerApp": {**jp_server_config.get("ServerApp", {}),
                                              "jpserver_extensions": {"server_ext": True}}}


@pytest.fixture
def server(jp_fetch, jp_serverapp, kernel_env):
    return jp_serverapp


async def published_env(serverapp, monkeypatch) -> dict:
    """The environment a kernel started by this server gets: CLAUDE_NB_URL and _TOKEN."""
    for name in ("CLAUDE_NB_URL", "CLAUDE_NB_TOKEN"):
        monkeypatch.setenv(name, "")        # restored after the test
    # what `jupyter server` does once its loop runs (pytest-jupyter's fixture skips it)
    await serverapp.extension_manager.start_all_extensions()
    assert os.environ["CLAUDE_NB_URL"]
    return dict(os.environ)


async def test_quickstart_through_the_server(server, kernel_env, upstream, tmp_path):
    server_env = await published_env(server, kernel_env)
    nb, client = await execute("quickstart.ipynb", server_env, tmp_path)
    check_quickstart(nb, client, upstream, "server")
    # The chat's follow-up cell went to the CLI process its first cell left (the kernel sent
    # its session key); `%claude reset` ended that one, so only the chat after it is kept.
    pool = next(iter(server.extension_manager.extension_apps["server_ext"])).bridge.pool
    assert pool.counts["session_hits"] >= 1 and len(pool.sessions) == 1


async def test_sdk_notebook_through_the_server(server, kernel_env, upstream, tmp_path):
    server_env = await published_env(server, kernel_env)
    nb, _ = await execute("sdk.ipynb", server_env, tmp_path)
    assert server_env["CLAUDE_NB_URL"].rstrip("/") in text_of(nb, "anthropic_client")
    assert text_of(nb, "messages.create\\(\n").startswith("You said: Hello, Claude")
    assert "Usage(" in text_of(nb, "messages.create\\(\n")
    streamed = text_of(nb, "messages.stream")
    assert streamed.startswith("You said: Write a haiku about notebooks") and "end_turn" in streamed
    assert "claude-" in text_of(nb, "models.list")
    assert int(text_of(nb, "count_tokens")) > 0
    assert text_of(nb, "claude-no-such-model").strip() == "404 not_found_error"
    batch_lines = text_of(nb, "batches.create").strip().splitlines()
    assert batch_lines == ["q0 succeeded You said: What is 2 + 2?",
                           "q1 succeeded You said: Name a colour."]


async def test_batch_analysis_through_the_server(server, kernel_env, upstream, tmp_path):
    server_env = await published_env(server, kernel_env)
    nb, _ = await execute("batch_analysis.ipynb", server_env, tmp_path)
    assert text_of(nb, "^job = claude_nb.batch").strip("'").startswith("msgbatch_")
    assert re.search(r"Batch msgbatch_\w+ ended in \d+ s: 8 succeeded", text_of(nb, r"job.wait\(\)"))
    # the progress widget was replaced by its summary: the saved notebook has no dead widget
    assert not [o for o in outputs(nb, r"job.wait\(\)")
                if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    prompts = sorted(r.user_texts()[-1] for r in upstream.message_requests)
    assert len(prompts) == 8 and prompts[0].startswith("Classify the sentiment")
    assert all(r.body["max_tokens"] == 10 and "haiku" in r.body["model"]
               for r in upstream.message_requests)
    table = outputs(nb, "^results = job.to_dataframe", "execute_result")[0].data["text/html"]
    assert table.count("succeeded") == 8 and "positive" in table and "negative" in table
    pivot = text_of(nb, "pivot_table")
    assert re.search(r"kettle\s+0\s+1\s+1", pivot) and re.search(r"lamp\s+1\s+1\s+1", pivot)
    assert text_of(nb, "batch_job") == "('ended', 8)"
    usage = outputs(nb, "usage_report", "execute_result")[0].data["text/plain"]
    assert upstream.message_requests[-1].body["model"] in usage    # the model `haiku` ran
    assert "output_tokens" in outputs(nb, "usage_report", "execute_result")[0].data["text/html"]
    assert "Output Tokens" not in text_of(nb, "cost_report") and "output_tokens" in text_of(nb, "cost_report")
    plots = outputs(nb, "matplotlib", "display_data")
    assert any("image/png" in o.data for o in plots)


RESTART_CELLS = [
    "import claude_nb\n"
    "job = claude_nb.batch(['alpha', 'beta', 'gamma'], prompt='Echo {input}', max_tokens=20)\n"
    "print(job.id, job.status)",
    "assert 'job' not in globals()      # a new kernel process\n"
    "import claude_nb\n"
    "job = claude_nb.batch_job(JOB_ID)\n"
    "frame = job.wait(progress=False, poll_interval=0.2).to_dataframe()\n"
    "print(list(frame['input']), list(frame['status']), list(frame['text']))\n"
    "from claude_nb.kernel.transports import default_transport\n"
    "print(default_transport().kind)",
]


async def test_batch_job_reattaches_after_a_kernel_restart_server(server, kernel_env, upstream,
                                                                  tmp_path):
    env = await published_env(server, kernel_env)
    await restart_and_reattach(env, upstream, tmp_path, "server")


async def test_batch_job_reattaches_after_a_kernel_restart_in_process(kernel_env, upstream, tmp_path):
    # no server at all: the batch runner lives in the kernel, and dies with it
    kernel_env.delenv("CLAUDE_NB_URL", raising=False)
    await restart_and_reattach(dict(os.environ), upstream, tmp_path, "in-process")


async def restart_and_reattach(env, upstream, tmp_path, through):
    # slow answers: the batch is still running when the kernel restarts
    upstream.responder = lambda rec: Reply.text("echo: " + rec.user_texts()[-1][5:],
                                                hang=1.5, delay_per_chunk=0.05)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in RESTART_CELLS])
    client = NotebookClient(nb, kernel_name="python3", timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}})
    async with client.async_setup_kernel(env={**env, "PYTHONPATH": str(ROOT)}):
        await client.async_execute_cell(nb.cells[0], 0)
        job_id, status = nb.cells[0].outputs[0].text.split()
        assert job_id.startswith("msgbatch_") and status == "in_progress"
        await client.km.restart_kernel(now=True)
        await client.kc._async_wait_for_ready(timeout=60)
        nb.cells[1].source = nb.cells[1].source.replace("JOB_ID", repr(job_id))
        await client.async_execute_cell(nb.cells[1], 1)
    printed = "".join(o.text for o in nb.cells[1].outputs).strip().splitlines()
    assert printed == ["['alpha', 'beta', 'gamma'] ['succeeded', 'succeeded', 'succeeded'] "
                       "['echo: alpha', 'echo: beta', 'echo: gamma']", through]


async def test_kernel_finds_its_parent_server_without_the_variables(server, kernel_env, upstream,
                                                                    tmp_path):
    """A kernel of a server whose environment lacks CLAUDE_NB_URL (e.g. started before the
    extension was enabled) finds it from the runtime file named by its JPY_PARENT_PID."""
    kernel_env.delenv("CLAUDE_NB_URL", raising=False)
    kernel_env.delenv("CLAUDE_NB_TOKEN", raising=False)
    server.write_server_info_file()       # what `jupyter server` writes at start
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from claude_nb import claude\n"
        "from claude_nb.kernel.transports import default_transport\n"
        "print(default_transport().describe())\n"
        "print(claude.message('parent?'))")])
    client = NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    await client.async_execute(env={**os.environ, "PYTHONPATH": str(ROOT)})
    where, answer = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip().splitlines()
    assert where.startswith("Jupyter server at http") and answer == "You said: parent?"
