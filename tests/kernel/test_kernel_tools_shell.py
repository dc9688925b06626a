"""Claude that sees the kernel, in an IPython shell (no Jupyter kernel): Python functions as
tools, `%claude fix`, references, and the agent's tools with the terminal's y/N approval.
Real CLI, recording upstream; every tool call is scripted upstream as `mcp__client__<name>`."""
from __future__ import annotations

import asyncio
import io
import json
import sys
from typing import Literal

import pytest
from IPython.utils.capture import capture_output

from claude_nb import Claude, claude
from claude_nb.kernel.credentials import Scrubber, looks_like_credential, scrub_assignments
from claude_nb.kernel.tools import FunctionTool, parse_docstring
from tests.support.fake_upstream import Reply


def everything_sent(upstream) -> str:
    return "\n".join(json.dumps(r.body) for r in upstream.requests)


# -- Python functions as tools ------------------------------------------------------------------
def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Current weather for a city.

    Args:
        city: the city's name, e.g. "Paris".
        unit: temperature unit.
    """
    return f"18 degrees {unit} and sunny in {city}"


def test_schema_from_signature_hints_and_docstring():
    definition = FunctionTool(get_weather).definition()
    assert definition["name"] == "get_weather"
    assert definition["description"] == "Current weather for a city."
    schema = definition["input_schema"]
    assert schema["required"] == ["city"]
    assert schema["properties"]["city"] == {"type": "string",
                                            "description": 'the city\'s name, e.g. "Paris".'}
    assert schema["properties"]["unit"] == {"enum": ["C", "F"], "type": "string",
                                            "description": "temperature unit.", "default": "C"}
    summary, params = parse_docstring("""Add.

    Parameters
    ----------
    a : int
        first
    b : float
        second,
        continued
    """)
    assert summary == "Add." and params == {"a": "first", "b": "second, continued"}


def test_python_functions_as_tools_in_process(local, upstream):
    calls = []

    def lookup_price(item: str, quantity: int = 1) -> dict:
        """Price of an item in the shop."""
        calls.append((item, quantity))
        return {"item": item, "total": 2.5 * quantity}

    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}, text="Checking."),
                  Reply(blocks=[("tool_use", "mcp__client__lookup_price",
                                 {"item": "bread", "quantity": 2}),
                                ("tool_use", "mcp__client__get_weather", {"town": "Rome"})],
                        stop_reason="tool_use"),
                  Reply.text("Paris is sunny and bread costs 5.0."))
    answer = claude.answer("Weather in Paris, and two breads?", tools=[get_weather, lookup_price])
    assert answer.text == "Paris is sunny and bread costs 5.0."
    assert answer.rounds == 3 and calls == [("bread", 2)]
    assert [c["name"] for c in answer.tool_calls] == ["get_weather", "lookup_price", "get_weather"]
    # what the kernel sent back: each result, the bad call as an is_error result
    results = upstream.message_requests[-1].tool_results()
    assert results[0] == {"content": "18 degrees C and sunny in Paris", "is_error": False}
    assert json.loads(results[1]["content"]) == {"item": "bread", "total": 5.0}
    assert results[2]["is_error"] and "Unknown argument(s) for get_weather: town" in results[2]["content"]
    first = upstream.message_requests[0]
    sent = {t["name"]: t for t in first.body["tools"]}
    assert sent["mcp__client__get_weather"]["input_schema"]["required"] == ["city"]
    assert sent["mcp__client__lookup_price"]["description"] == "Price of an item in the shop."
    assert len(upstream.message_requests) == 3
    assert answer.usage["output_tokens"] == 36 and answer.cost_usd > 0


def test_message_stream_with_tools_yields_every_rounds_text(local, upstream):
    def fails(x: int) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    upstream.push(Reply.tool_use("mcp__client__fails", {"x": 1}, text="Trying."),
                  Reply.text("It failed, sorry."))
    pieces = list(claude.message_stream("go", tools=[fails]))
    assert "".join(pieces) == "Trying.\n\nIt failed, sorry."
    assert upstream.message_requests[-1].tool_results() == [{"content": "RuntimeError: disk on fire", "is_error": True}]


def test_tool_rounds_are_capped(local, upstream):
    upstream.push(*[Reply.tool_use("mcp__client__get_weather", {"city": "Oslo"}) for _ in range(3)])
    answer = claude.answer("loop", tools=[get_weather], max_tool_rounds=1)
    assert answer.stop_reason == "tool_use" and answer.rounds == 2
    assert len(upstream.message_requests) == 2


async def test_python_functions_as_tools_through_the_server(served, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Lima", "unit": "F"}),
                  Reply.text("Lima: sunny."))
    text = await asyncio.to_thread(Claude().message, "Weather in Lima?", tools=[get_weather])
    assert text == "Lima: sunny."
    assert upstream.message_requests[-1].tool_results() == \
        [{"content": "18 degrees F and sunny in Lima", "is_error": False}]


def test_mixing_functions_and_definitions_is_refused(local):
    with pytest.raises(TypeError, match="not both"):
        claude.message("x", tools=[get_weather, {"name": "t", "input_schema": {"type": "object"}}])


# -- credentials ----------------------------------------------------------------------------------
def test_credential_names_and_scrubbing():
    for name in ("api_key", "GITHUB_TOKEN", "dbPassword", "auth_headers", "APIKEY", "client_secret"):
        assert looks_like_credential(name), name
    for name in ("keys", "monkey", "author", "df", "totals"):
        assert not looks_like_credential(name), name
    scrub = Scrubber({"api_key": "sk-live-123456", "cfg": {"password": "hunter22!"}},
                     {"MY_SERVICE_TOKEN": "env-secret-99", "HOME": "/root"})
    assert scrub("a sk-live-123456 b hunter22! c env-secret-99 /root") == \
        "a [redacted] b [redacted] c [redacted] /root"
    assert scrub_assignments('password = "p4ss"\nx = "y"') == 'password = "[redacted]"\nx = "y"'


# -- a shell with the extension ---------------------------------------------------------------------
def test_fix_sends_the_failing_cell_and_its_traceback(make_shell, upstream):
    ip = make_shell()
    ip.run_cell("values = [1, 2, 3]", store_history=True)
    with capture_output():
        ip.run_cell("def mean(xs):\n    return sum(xs) / len(xs)\nmean(values) + mean([])",
                    store_history=True)
    ip.run_cell("ok = 1", store_history=True)           # a later cell that works
    upstream.push(Reply.text("`mean([])` divides by zero.\n```python\nmean(values)\n```"))
    with capture_output():
        ip.run_line_magic("claude", "fix --format code guard against empty lists")
    sent = upstream.message_requests[-1].user_texts()[-1]
    assert "cell In[2] failed with ZeroDivisionError" in sent
    assert "return sum(xs) / len(xs)\nmean(values) + mean([])" in sent
    assert "ZeroDivisionError: division by zero" in sent and "\x1b[" not in sent
    assert "Cell In[2], line 2, in mean" in sent and "----> 3 mean(values) + mean([])" in sent
    assert "Note from the user: guard against empty lists" in sent
    assert "Answer with code only" in upstream.message_requests[-1].system_text()
    assert ip.rl_next_input == "mean(values)"          # offered as the next cell


def test_fix_trims_long_tracebacks_and_says_when_nothing_failed(make_shell, upstream):
    ip = make_shell(fix_max_traceback_chars=1500)
    with capture_output() as cap:
        ip.run_line_magic("claude", "fix")
    assert "No failed cell to fix yet" in cap.stdout and not upstream.message_requests
    with capture_output():
        chain = "".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(60))
        ip.run_cell(chain + "def f60():\n    return 1 / 0\nf0()", store_history=True)
    with capture_output():
        ip.run_line_magic("claude", "fix")
    sent = upstream.message_requests[-1].user_texts()[-1]
    traceback = sent.split("The traceback:\n```\n", 1)[1].split("\n```", 1)[0]
    assert len(traceback) < 1600 and "trimmed ..." in traceback
    assert traceback.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "Explain briefly what caused the error" in sent


def test_references_to_inputs_outputs_errors_and_the_last_result(make_shell, upstream):
    ip = make_shell()
    ip.run_cell("x = 6 * 7", store_history=True)
    ip.run_cell("x + 1", store_history=True)
    with capture_output():
        ip.run_cell("int('forty')", store_history=True)
    ip.run_cell("x * 2", store_history=True)
    with capture_output():
        ip.run_cell_magic("claude", "", "code {In[1]} gave {Out[2]}; error {Err[3]}; last {_}; "
                                        "missing {Out[9]}; dict {{a: 1}}")
    sent = upstream.message_requests[-1].user_texts()[-1]
    assert sent.startswith("code x = 6 * 7 gave 43; error ")
    assert "ValueError: invalid literal for int() with base 10: 'forty'" in sent
    assert sent.endswith("; last 84; missing {Out[9]}; dict {a: 1}")
    assert "\x1b[" not in sent


def test_agent_reads_the_kernel_and_runs_approved_code_in_a_terminal(make_shell, upstream,
                                                                     monkeypatch):
    ip = make_shell()
    ip.run_cell("import pandas as pd\nsales = pd.DataFrame({'region': ['north', 'south'], "
                "'amount': [120, 80]})\napi_key = 'sk-ant-test-0123456789'\n"
                "settings = {'password': 'hunter2-secret', 'retries': 3}", store_history=True)
    upstream.push(
        Reply.tool_use("mcp__client__list_variables", {}),
        Reply.tool_use("mcp__client__inspect_variable", {"name": "sales"}),
        Reply.tool_use("mcp__client__inspect_variable", {"name": "api_key"}),
        Reply.tool_use("mcp__client__inspect_variable", {"name": "settings"}),
        Reply.tool_use("mcp__client__read_cells", {"count": 3}),
        Reply.tool_use("mcp__client__run_code",
                       {"code": "total = int(sales['amount'].sum())\nprint('total', total)\n"
                                "print(api_key)\ntotal * 2"}),
        Reply.tool_use("mcp__client__insert_cell", {"code": "sales.plot.bar(x='region')"}),
        Reply.text("The total is 200."))
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    with capture_output() as cap:
        ip.run_cell_magic("claude", "--agent", "What is the total of sales?")
    assert ip.user_ns["total"] == 200                       # approved: the namespace changed
    results = upstream.message_requests[-1].tool_results()
    listing = results[0]["content"]
    assert "sales: pandas.DataFrame, shape (2, 2)" in listing
    assert "api_key: str ([withheld: credential])" in listing and "pd" not in listing.split()
    assert "region: object" in results[1]["content"] or "region: str" in results[1]["content"]
    assert "describe:" in results[1]["content"] and "north" in results[1]["content"]
    assert results[2]["is_error"] and "withheld" in results[2]["content"]
    assert "'retries': 3" in results[3]["content"] and "hunter2" not in results[3]["content"]
    assert "In [1]:" in results[4]["content"]
    assert results[5] == {"content": "Output:\ntotal 200\n[redacted]\nResult: 400",
                          "is_error": False}
    assert "Proposed as a new cell" in results[6]["content"]
    assert ip.rl_next_input == "sales.plot.bar(x='region')"
    # no credential value left the kernel, in any request
    sent = everything_sent(upstream)
    assert "sk-ant-test-0123456789" not in sent and "hunter2-secret" not in sent
    # the terminal showed each call and asked
    assert "Run it? [y/N]" in cap.stdout and "run_code" in cap.stdout
    assert "The total is 200." in cap.stdout
    assert "AGENT" not in cap.stdout and ip.user_ns.get("_") != "The total is 200."


def test_agent_denied_or_never_runs_nothing(make_shell, upstream, monkeypatch):
    ip = make_shell()
    code = {"code": "import pathlib\npathlib.Path('ran.txt').write_text('x')\nflag = 'ran'"}
    upstream.push(Reply.tool_use("mcp__client__run_code", code), Reply.text("OK, not run."))
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    with capture_output():
        ip.run_cell_magic("claude", "--agent", "set the flag")
    assert "flag" not in ip.user_ns
    result = upstream.message_requests[-1].tool_results()[0]
    assert result["is_error"] and "The user denied it. Nothing was run." in result["content"]
    upstream.reset()
    ip.run_line_magic("config", "ClaudeMagics.agent_run = 'never'")
    upstream.push(Reply.tool_use("mcp__client__run_code", code), Reply.text("OK."))
    with capture_output():
        ip.run_cell_magic("claude", "--agent", "set the flag")
    assert "flag" not in ip.user_ns
    assert "agent_run = 'never'" in upstream.message_requests[-1].tool_results()[0]["content"]


def test_agent_function_and_always_mode(make_shell, upstream):
    import claude_nb
    ip = make_shell()
    upstream.push(Reply.tool_use("mcp__client__run_code", {"code": "answer = 6 * 7"}),
                  Reply.text("Set answer to 42."))
    with capture_output():
        result = claude_nb.agent("set answer", run="always")
    assert ip.user_ns["answer"] == 42 and result.text == "Set answer to 42."
    assert [c["status"] for c in result.tool_calls] == ["ok"]
    assert "**run_code**" in result.transcript and "answer = 6 * 7" in result.transcript


def test_real_terminal_ipython_asks_y_n_and_times_out(cli_env, upstream, tmp_path):
    """`ipython` itself: the agent's code shows, then `[y/N]` on the terminal; "y" runs it, and
    no answer within agent_approval_timeout counts as no."""
    import os
    import subprocess
    from pathlib import Path
    upstream.push(Reply.tool_use("mcp__client__run_code", {"code": "x = 41 + 1"}),
                  Reply.text("x is set."),
                  Reply.tool_use("mcp__client__run_code", {"code": "y = 'ran'"}),
                  Reply.text("Not run."))
    root = Path(__file__).resolve().parents[2]
    code = ("%load_ext claude_nb\n"
            "%config ClaudeMagics.agent_approval_timeout = 2\n"
            "get_ipython().run_cell_magic('claude', '--agent', 'set x')\n"
            "print('x =', x)\n"
            "get_ipython().run_cell_magic('claude', '--agent', 'set y')\n"
            "print('y' in globals())\n")
    env = {**os.environ, "PYTHONPATH": str(root), "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop("CLAUDE_NB_URL", None)
    env.pop("JPY_PARENT_PID", None)
    with subprocess.Popen([sys.executable, "-m", "IPython", "--no-banner", "--quick",
                           "--colors=nocolor", "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as proc:
        proc.stdin.write("y\n")        # answers the first prompt; the second gets nothing
        proc.stdin.flush()             # (stdin stays open: no EOF, the prompt must time out)
        proc.wait(timeout=180)
        out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err
    assert out.count("Run it? [y/N]") == 2 and "x = 42" in out and "\nFalse" in out
    assert "```python\nx = 41 + 1\n```" in out
    results = [m for m in upstream.message_requests[-1].messages if m["role"] == "user"]
    assert "did not answer within 2 s" in json.dumps(results)
