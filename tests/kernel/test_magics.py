"""%%claude and %claude in a fresh IPython shell, against the real CLI and the recording upstream."""
from __future__ import annotations

import io
import sys

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from claude_nb.kernel.templating import expand_variables, fill_template
from tests.support.fake_upstream import Reply


@pytest.fixture
def ip(make_shell):
    return make_shell()


def displays(cap):
    return [o for o in cap.outputs]


# -- streaming into the output ----------------------------------------------------------------
def test_cell_streams_into_one_output_and_ends_with_the_whole_answer(ip, upstream):
    text = "Streaming works: " + " ".join(f"word{i}" for i in range(40)) + "."
    upstream.push(Reply.text(text, input_tokens=40, output_tokens=60))
    ip.run_line_magic("config", "ClaudeMagics.display = 'update'")     # as in a kernel
    ip.run_line_magic("config", "ClaudeMagics.update_interval = 0.0")  # every delta shown
    with capture_output() as cap:
        result = ip.run_cell_magic("claude", "", "Say something long")
    assert result is None                       # no Out[n] duplicate
    outs = displays(cap)
    first, updates = outs[0], outs[1:]
    assert not first.update and len(updates) >= 2 and all(o.update for o in updates)
    ids = {o.transient["display_id"] for o in outs}
    assert len(ids) == 1                        # one output, updated in place
    partial = updates[0].data["text/markdown"]
    assert text.startswith(partial) and len(partial) < len(text)
    final = outs[-1]
    assert final.data["text/markdown"] == text
    assert final.data["text/plain"] == text     # a real text/plain, not "<Markdown object>"
    meta = final.metadata["claude_nb"]
    assert meta["usage"]["input_tokens"] == 40 and meta["usage"]["output_tokens"] == 60
    assert meta["model"].startswith("claude-") and meta["request_id"].startswith("req_")
    assert meta["cost_usd"] > 0 and meta["transport"] == "in-process"


def test_no_stream_shows_the_answer_once(ip, upstream):
    ip.run_line_magic("config", "ClaudeMagics.display = 'update'")
    with capture_output() as cap:
        ip.run_cell_magic("claude", "--no-stream", "once please")
    assert len(cap.outputs) == 1 and not cap.outputs[0].update
    assert cap.outputs[0].data["text/markdown"] == "You said: once please"
    assert "claude_nb" in cap.outputs[0].metadata


def test_terminal_prints_the_answer_as_it_arrives(ip, upstream, monkeypatch):
    upstream.push(Reply.text("Printed piece by piece in a terminal."))
    writes = []

    class Recorder(io.StringIO):
        def write(self, s):
            writes.append(s)
            return super().write(s)
    monkeypatch.setattr(sys, "stdout", Recorder())
    ip.run_cell_magic("claude", "", "terminal")
    chunks = [w for w in writes if w.strip()]
    assert len(chunks) >= 2
    assert "".join(writes).strip() == "Printed piece by piece in a terminal."


# -- options ----------------------------------------------------------------------------------
def test_options_reach_upstream_and_output_variable_is_set(ip, upstream):
    with capture_output():
        ip.run_cell_magic("claude", '--model haiku --system "Talk like a pirate." --max-tokens 99 -o reply',
                          "ahoy")
    sent = upstream.message_requests[-1]
    assert "haiku" in sent.body["model"] and sent.body["max_tokens"] == 99
    assert "Talk like a pirate." in sent.system_text()
    assert ip.user_ns["reply"] == "You said: ahoy"


def test_config_traits_set_defaults(make_shell, upstream):
    shell = make_shell(model="haiku", max_tokens=123, system="Config system prompt.")
    with capture_output():
        shell.run_cell_magic("claude", "", "hi")
    sent = upstream.message_requests[-1]
    assert "haiku" in sent.body["model"] and sent.body["max_tokens"] == 123
    assert "Config system prompt." in sent.system_text()
    shell.run_line_magic("config", "ClaudeMagics.max_tokens = 55")
    with capture_output():
        shell.run_cell_magic("claude", "", "again")
    assert upstream.message_requests[-1].body["max_tokens"] == 55


def test_bad_options_are_a_usage_error(ip):
    with pytest.raises(UsageError, match="--format"):
        ip.run_cell_magic("claude", "--format poem", "x")
    with pytest.raises(UsageError, match="quotation"):
        ip.run_cell_magic("claude", '--system "unclosed', "x")
    with pytest.raises(UsageError, match="empty"):
        ip.run_cell_magic("claude", "", "   \n")


# -- formats ----------------------------------------------------------------------------------
def test_code_format_offers_the_code_as_the_next_cell_and_to_copy(ip, upstream):
    upstream.push(Reply.text("```python\ndef add(a, b):\n    return a < b\n```"))
    ip.run_line_magic("config", "ClaudeMagics.display = 'update'")     # as in a kernel
    with capture_output() as cap:
        ip.run_cell_magic("claude", "-f code", "write add")
    assert ip.rl_next_input == "def add(a, b):\n    return a < b"
    # where the front-end ignores set_next_input (VS Code, Colab) the output has the code
    shown = cap.outputs[-1].data["text/html"]
    assert "<code>def add(a, b):\n    return a &lt; b</code>" in shown
    assert ">Copy</button>" in shown and "VS Code and Colab" in shown
    assert "code only" in upstream.message_requests[-1].system_text()


def test_json_format_parses_and_stores_the_value(ip, upstream):
    # --format json asks for structured output: the CLI's StructuredOutput tool carries it
    upstream.push(Reply.tool_use("StructuredOutput", {"city": "Paris", "population": 2100000}))
    ip.run_line_magic("config", "ClaudeMagics.display = 'update'")
    with capture_output() as cap:
        ip.run_cell_magic("claude", "--format json -o info", "facts about Paris")
    assert ip.user_ns["info"] == {"city": "Paris", "population": 2100000}
    final = cap.outputs[-1]
    assert final.data["application/json"] == {"city": "Paris", "population": 2100000}
    assert '"city": "Paris"' in final.data["text/plain"]
    sent = upstream.message_requests[-1].body
    assert any(t["name"] == "StructuredOutput" for t in sent["tools"])


# -- chat memory --------------------------------------------------------------------------------
def test_cells_continue_one_conversation_until_reset(ip, upstream, local):
    with capture_output():
        ip.run_cell_magic("claude", "", "My name is Ada.")
        ip.run_cell_magic("claude", "", "What is my name?")
    sent = upstream.message_requests[-1]
    assert [m["role"] for m in sent.conversation()] == ["user", "assistant", "user"]
    assert sent.user_texts() == ["My name is Ada.", "What is my name?"]
    # The second cell went to the first cell's CLI process, which kept the conversation.
    pool = local.bridge.pool
    assert pool.counts["session_hits"] == 1 and len(pool.sessions) == 1
    (kept,) = pool.sessions.values()
    with capture_output() as cap:
        ip.run_line_magic("claude", "reset")
        ip.run_cell_magic("claude", "", "Fresh start")
    assert "2 exchanges" in cap.stdout
    assert kept.proc.proc.returncode is not None        # reset ended the chat's process
    assert upstream.message_requests[-1].user_texts() == ["Fresh start"]
    with capture_output():
        ip.run_cell_magic("claude", "--new", "Newer start")
    assert upstream.message_requests[-1].user_texts() == ["Newer start"]


def test_failed_cell_is_not_remembered(ip, upstream):
    upstream.push(Reply.error(529, "overloaded_error", "Overloaded"))
    with capture_output():
        ip.run_cell_magic("claude", "", "lost question")
        ip.run_cell_magic("claude", "", "next question")
    assert upstream.message_requests[-1].user_texts() == ["next question"]


# -- errors -----------------------------------------------------------------------------------
def test_rate_limit_is_one_clear_line_without_traceback(ip, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"))
    with capture_output() as cap:
        result = ip.run_cell("%%claude\nhello")
    assert result.success
    lines = [line for line in cap.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("Claude error [rate_limit_error]: ")
    assert "Number of requests has exceeded your rate limit" in lines[0]
    assert "Traceback" not in cap.stdout + cap.stderr


def test_logged_out_cli_is_one_clear_line(ip, upstream, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with capture_output() as cap:
        ip.run_cell("%%claude\nhello")
    assert "Claude error [authentication_error]" in cap.stderr and "log in" in cap.stderr
    assert "Traceback" not in cap.stderr


def test_missing_cli_is_one_clear_line(ip, monkeypatch):
    monkeypatch.setenv("CLAUDE_NB_CLI", "/nonexistent/claude")
    monkeypatch.setenv("PATH", "/nonexistent")
    with capture_output() as cap:
        ip.run_cell("%%claude\nhello")
    assert "was not found" in cap.stderr and "Traceback" not in cap.stderr


# -- interpolation ----------------------------------------------------------------------------
def test_cell_variables_are_expanded_but_code_braces_survive(ip, upstream):
    ip.user_ns.update(topic="sorting", data={"n": 3}, items=["a", "b"])
    cell = ("Explain {topic} for n={data['n']} and {items[-1]}.\n"
            "def f(x): return {k: v for k, v in x.items()}\n"
            "Keep {{topic}} literal and {undefined} as is.")
    with capture_output():
        ip.run_cell(f"%%claude\n{cell}")
    sent = upstream.message_requests[-1].user_texts()[-1]
    assert sent == ("Explain sorting for n=3 and b.\n"
                    "def f(x): return {k: v for k, v in x.items()}\n"
                    "Keep {topic} literal and {undefined} as is.")


def test_options_line_is_not_expanded_by_ipython(ip, upstream):
    ip.user_ns["secret"] = "EXPANDED"
    with capture_output():
        ip.run_cell("%%claude --system 'keep {secret} and $secret'\nhi")
    system = upstream.message_requests[-1].system_text()
    assert "keep {secret} and $secret" in system


def test_no_interpolate_flag_sends_the_cell_as_written(ip, upstream):
    ip.user_ns["topic"] = "sorting"
    with capture_output():
        ip.run_cell_magic("claude", "--no-interpolate", "about {topic}")
    assert upstream.message_requests[-1].user_texts()[-1] == "about {topic}"


class Point:
    def __init__(self):
        self.x = 3
        self.tags = ["p", "q"]

    @property
    def broken(self):
        raise RuntimeError("no")


@pytest.mark.parametrize("text, expected", [
    ("{name}", "Ada"),
    ("{pt.x} and {pt.tags[1]}", "3 and q"),
    ("{d['key']} {d[\"key\"]} {xs[0]} {xs[-1]}", "v v 1 3"),
    ("{missing} {name.nope} {xs[9]} {d['nokey']}", "{missing} {name.nope} {xs[9]} {d['nokey']}"),
    ("{pt.broken}", "{pt.broken}"),
    ("{pt.__class__} {name.__len__}", "{pt.__class__} {name.__len__}"),
    ("{{name}} {{ and }}", "{name} { and }"),
    ("{ name } {name:>10} {name!r} {name + 1}", "{ name } {name:>10} {name!r} {name + 1}"),
    ("function f() { return {a: 1}; }", "function f() { return {a: 1}; }"),
    ("{xs[len(xs)-1]} {d[key]}", "{xs[len(xs)-1]} {d[key]}"),
    ("s = {name}; t = {{}}", "s = Ada; t = {}"),
    ("{", "{"), ("}", "}"), ("", ""),
])
def test_expand_variables_edge_cases(text, expected):
    ns = {"name": "Ada", "pt": Point(), "d": {"key": "v"}, "xs": [1, 2, 3]}
    assert expand_variables(text, ns) == expected


def test_fill_template_uses_columns_and_leaves_the_rest():
    row = {"review": "Great {product}!", "first name": "Bo", 3: "three"}
    assert fill_template("Rate: {review} by {first name} {3} {other} {{x}}", row) == \
        "Rate: Great {product}! by Bo three {other} {x}"


# -- %claude subcommands ----------------------------------------------------------------------
def test_line_subcommands(ip, upstream):
    with capture_output() as cap:
        ip.run_line_magic("claude", "help")
    assert "%%claude [options]" in cap.stdout
    table = ip.run_line_magic("claude", "models")
    bundle = table._repr_mimebundle_()
    assert "claude-sonnet-5" in bundle["text/plain"] and "| model |" in bundle["text/markdown"]
    with capture_output():
        ip.run_cell_magic("claude", "", "hi")
    with capture_output() as cap:
        ip.run_line_magic("claude", "status")
    assert "in-process" in cap.stdout and "1 exchange" in cap.stdout and "req_" in cap.stdout
    with capture_output() as cap:
        ip.run_line_magic("claude", "history")
    assert "--- you\nhi" in cap.stdout and "You said: hi" in cap.stdout
    with pytest.raises(UsageError, match="unknown subcommand"):
        ip.run_line_magic("claude", "what is the time")


# -- the chat widget --------------------------------------------------------------------------
def test_chat_widget_streams_in_the_background_and_remembers(local, upstream):
    from claude_nb.kernel.widgets import ChatWidget
    widget = ChatWidget(update_interval=0.0)
    widget.prompt.value = "My name is Ada."
    widget.send_button.click()
    widget.wait(60)
    assert "You said: My name is Ada." in widget.transcript.value
    # one reply, settled: no second, empty "Claude ▍" left by the thread's last render
    assert widget.transcript.value.count("<b>Claude</b>") == 1 and "▍" not in widget.transcript.value
    assert widget.send_button.disabled is False and widget.stop_button.disabled is True
    widget.send("What is my name?")
    widget.wait(60)
    assert upstream.message_requests[-1].user_texts() == ["My name is Ada.", "What is my name?"]
    assert [t["role"] for t in widget.conversation] == ["user", "assistant"] * 2
    assert "in /" in widget.status.value


def test_chat_widget_stop_button_ends_the_answer_and_the_process(local, upstream):
    from claude_nb.kernel.widgets import ChatWidget
    upstream.push(Reply.text("slow " * 300, delay_per_chunk=0.02))
    widget = ChatWidget(update_interval=0.0)
    widget.send("talk slowly")
    for _ in range(600):                     # until the first words have arrived
        if widget._live:
            break
        widget.wait(0.05)
    assert widget.busy and widget.stop_button.disabled is False
    widget.stop_button.click()
    widget.wait(30)
    assert not widget.busy and widget.status.value == "stopped"
    assert widget.transcript.value.count("<b>Claude</b>") == 1 and "▍" not in widget.transcript.value
    answer = widget.conversation[-1]["content"]
    assert answer and len(answer) < len("slow " * 300)
    assert local.bridge.live == set()


def test_chat_widget_shows_errors_in_its_status(local, upstream):
    from claude_nb.kernel.widgets import ChatWidget
    upstream.push(Reply.error(529, "overloaded_error", "Overloaded"))
    widget = ChatWidget()
    widget.send("hi")
    widget.wait(60)
    assert widget.status.value.startswith("Claude error [overloaded_error]")
    assert widget.conversation == []


def test_real_terminal_ipython_prints_the_answer(cli_env, upstream, tmp_path):
    """`ipython` itself (TerminalInteractiveShell, no kernel): plain text, no display junk."""
    import os
    import subprocess
    from pathlib import Path
    upstream.push(Reply.text("Terminal answer, printed as it comes."))
    root = Path(__file__).resolve().parents[2]
    code = ("%load_ext claude_nb\n"
            "assert type(get_ipython()).__name__ == 'TerminalInteractiveShell'\n"
            "get_ipython().run_cell_magic('claude', '--model haiku', 'hello from a terminal')\n")
    env = {**os.environ, "PYTHONPATH": str(root), "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop("CLAUDE_NB_URL", None)
    env.pop("JPY_PARENT_PID", None)
    done = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--quick",
                           "--colors=nocolor", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Terminal answer, printed as it comes." in done.stdout
    assert "IPython.core.display" not in done.stdout and "Rendered object" not in done.stdout
    assert upstream.message_requests[-1].user_texts() == ["hello from a terminal"]
