"""`df.claude`: schemas to typed columns, estimates and max_cost_usd, failures per row, the
cache, waiting on running batches, re-attaching; plus %%claude --cache and the report charts.

The DataFrame methods run in-process (a kernel without a server) with the real CLI against the
recording upstream, which answers the CLI's StructuredOutput tool (tests/support/structured_replies.py).
notebooks/dataframes.ipynb runs the same through a Jupyter server (tests/kernel/test_notebooks.py).
"""
from __future__ import annotations

import typing

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import claude_nb
from claude_nb import ClaudeError
from claude_nb.kernel.schema import output_schema, typed_columns
from claude_nb.protocol.models import resolve_model
from tests.support.fake_upstream import Reply
from tests.support.structured_replies import structured_reply


def products():
    return pd.DataFrame({"review": ["The kettle is great, 5 stars, yes",
                                    "The lamp broke, refund please",
                                    "The toaster is fine"]},
                        index=["a", "b", "c"])


@pytest.fixture
def scripted(local, upstream):
    """Structured requests get a schema-valid tool call; others the echo."""
    upstream.responder = lambda rec: structured_reply(rec) or Reply.text(
        "You said: " + rec.user_texts()[-1])
    return upstream


# -- schemas ----------------------------------------------------------------------------------
def test_a_dict_schema_becomes_a_strict_json_schema_and_dtypes():
    spec = output_schema({"name": str, "stars": int, "price": float, "ok": bool,
                          "topic": ["price", "quality"], "mood": typing.Literal["up", "down"],
                          "note": typing.Optional[str]})
    assert spec.json_schema == {
        "type": "object", "additionalProperties": False,
        "required": ["name", "stars", "price", "ok", "topic", "mood", "note"],
        "properties": {"name": {"type": "string"}, "stars": {"type": "integer"},
                       "price": {"type": "number"}, "ok": {"type": "boolean"},
                       "topic": {"type": "string", "enum": ["price", "quality"]},
                       "mood": {"type": "string", "enum": ["up", "down"]},
                       "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
    dtypes = {k: str(v) for k, v in spec.dtypes.items()}
    assert dtypes == {"name": "string", "stars": "Int64", "price": "float64", "ok": "boolean",
                      "topic": "category", "mood": "category", "note": "string"}
    assert list(spec.dtypes["topic"].categories) == ["price", "quality"]


def test_json_schema_pydantic_and_typeddict_schemas():
    import pydantic

    class Review(pydantic.BaseModel):
        product: typing.Literal["kettle", "lamp"]
        stars: int
        summary: str

    class Flags(typing.TypedDict):
        refund: bool
        score: float

    from_model = output_schema(Review)
    assert from_model.json_schema["required"] == ["product", "stars", "summary"]
    assert from_model.json_schema["additionalProperties"] is False
    assert {k: str(v) for k, v in from_model.dtypes.items()} == {
        "product": "category", "stars": "Int64", "summary": "string"}
    assert {k: str(v) for k, v in output_schema(Flags).dtypes.items()} == {
        "refund": "boolean", "score": "float64"}
    raw = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array"}}}
    spec = output_schema(raw)
    assert spec.json_schema["required"] == ["n", "tags"]
    assert {k: str(v) for k, v in spec.dtypes.items()} == {"n": "Int64", "tags": "object"}


def test_schemas_that_cannot_make_columns_are_refused_clearly():
    for bad in ({}, "str", {"x": complex}, {"x": []}, {"type": "object", "properties": {}}):
        with pytest.raises(ClaudeError) as err:
            output_schema(bad)
        assert err.value.type == "invalid_request_error"


def test_typed_columns_keep_failed_rows_empty_and_values_typed():
    spec = output_schema({"stars": int, "ok": bool, "topic": ["a", "b"], "score": float})
    frame = typed_columns([{"stars": 4, "ok": True, "topic": "b", "score": 0.5}, None],
                          spec, pd.Index(["x", "y"]))
    assert frame.loc["x", "stars"] == 4 and frame.loc["x", "topic"] == "b"
    assert frame["stars"].isna()["y"] and frame["ok"].isna()["y"] and pd.isna(frame.loc["y", "score"])
    assert [str(t) for t in frame.dtypes] == ["Int64", "boolean", "category", "float64"]


# -- the methods against the CLI ----------------------------------------------------------------
def test_extract_gives_typed_columns_in_input_order_and_a_rerun_is_free(scripted):
    df = products()
    schema = {"product": ["kettle", "lamp", "toaster"], "stars": int, "refund": bool}
    out = df.claude.extract("Read: {review}", schema, model="haiku", max_tokens=100, progress=False)
    assert list(out.index) == ["a", "b", "c"]
    assert list(out.columns) == ["product", "stars", "refund", "cached", "error"]
    assert list(out["product"]) == ["kettle", "lamp", "toaster"]
    assert str(out["product"].dtype) == "category" and str(out["stars"].dtype) == "Int64"
    assert str(out["refund"].dtype) == "boolean" and list(out["refund"]) == [True, False, False]
    assert not out["cached"].any() and out["error"].isna().all()
    sent = scripted.message_requests
    assert len(sent) == 3
    tool = next(t for t in sent[0].body["tools"] if t["name"] == "StructuredOutput")
    assert tool["input_schema"]["properties"]["product"]["enum"] == ["kettle", "lamp", "toaster"]
    # the same call again: every row from the cache, nothing sent, nothing billed
    again = df.claude.extract("Read: {review}", schema, model="haiku", max_tokens=100, progress=False)
    assert again["cached"].all() and len(scripted.message_requests) == 3
    assert again.drop(columns="cached").equals(out.drop(columns="cached"))
    assert again.attrs["claude_nb"]["cost_usd"] == 0.0
    # cache=False runs it again
    df.claude.extract("Read: {review}", schema, model="haiku", max_tokens=100, progress=False,
                      cache=False)
    assert len(scripted.message_requests) == 6


def test_one_failed_row_is_an_error_cell_not_an_exception(local, upstream, capsys):
    def respond(rec):
        if "broke" in rec.user_texts()[-1]:
            return Reply.error(400, "invalid_request_error", "this row is refused")
        return structured_reply(rec)
    upstream.responder = respond
    out = products().claude.extract("Read: {review}", {"stars": int}, model="haiku",
                                    max_tokens=100, progress=False)
    assert out["error"].isna().tolist() == [True, False, True]
    assert "this row is refused" in out.loc["b", "error"] and pd.isna(out.loc["b", "stars"])
    assert out["stars"].notna().tolist() == [True, False, True]
    assert "1 of 3 rows failed" in capsys.readouterr().err
    labels = products().claude.classify("Which? {review}", ["kettle", "lamp", "toaster"],
                                        model="haiku", max_tokens=100, progress=False)
    assert labels.isna().tolist() == [False, True, False]
    assert "this row is refused" in labels.attrs["claude_nb"]["errors"]["b"]


def test_classify_is_categorical_and_filter_keeps_columns(scripted):
    df = products()
    labels = df.claude.classify("Which product? {review}", ["kettle", "lamp", "toaster"],
                                model="haiku", max_tokens=100, progress=False)
    assert str(labels.dtype) == "category" and list(labels.cat.categories) == ["kettle", "lamp", "toaster"]
    assert list(labels) == ["kettle", "lamp", "toaster"] and list(labels.index) == ["a", "b", "c"]
    # the labels reach the model in the prompt and as the schema's enum
    sent = scripted.message_requests[-1]
    assert "kettle, lamp, toaster" in sent.user_texts()[-1]
    kept = df.claude.filter("{review}", model="haiku", max_tokens=100, progress=False)
    assert list(kept.index) == ["a"] and list(kept.columns) == ["review"]
    assert kept.loc["a", "review"] == df.loc["a", "review"]
    with pytest.raises(ClaudeError, match="two distinct labels"):
        df.claude.classify("x {review}", ["only"])


def test_map_returns_strings_in_order(scripted):
    answers = products().claude.map("Echo {review}", model="haiku", max_tokens=50, progress=False)
    assert str(answers.dtype) == "string" and list(answers.index) == ["a", "b", "c"]
    assert answers["c"] == "You said: Echo The toaster is fine"
    details = products().claude.map("Echo {review}", model="haiku", max_tokens=50,
                                    progress=False, details=True)
    assert details["cached"].all() and list(details.columns)[:3] == ["text", "status", "cached"]


# -- estimates and the cost limit -----------------------------------------------------------------
def test_estimate_counts_before_sending_and_max_cost_refuses(scripted):
    df = products()
    schema = {"stars": int, "summary": str}
    estimate = df.claude.estimate("Read: {review}", schema=schema, model="haiku", max_tokens=200)
    assert scripted.message_requests == []                 # nothing was sent
    assert estimate.rows == 3 and estimate.requests_to_send == 3 and estimate.cached_rows == 0
    assert estimate.output_tokens_max == 600
    low, high = estimate.output_tokens_expected
    assert 0 < low <= high <= 600
    assert estimate.input_tokens > 3 * 285              # the CLI's own part of each request too
    assert 0 < estimate.cost_usd_range[0] <= estimate.cost_usd <= estimate.cost_usd_max
    assert estimate.concurrency >= 1 and estimate.seconds_expected[0] > 0
    assert f"3 to send to {resolve_model('haiku').id}" in str(estimate)
    with pytest.raises(claude_nb.CostLimitExceeded) as err:
        df.claude.extract("Read: {review}", schema, model="haiku", max_tokens=200,
                          max_cost_usd=estimate.cost_usd / 2)
    message = str(err.value)
    assert f"${estimate.cost_usd:.4f}" in message and f"max_cost_usd=${estimate.cost_usd / 2:.4f}" in message
    assert scripted.message_requests == []
    # under the limit it runs; then the cache makes the estimate free
    df.claude.extract("Read: {review}", schema, model="haiku", max_tokens=200,
                      max_cost_usd=estimate.cost_usd * 2, progress=False)
    assert len(scripted.message_requests) == 3
    after = df.claude.estimate("Read: {review}", schema=schema, model="haiku", max_tokens=200)
    assert after.cached_rows == 3 and after.requests_to_send == 0 and after.cost_usd == 0
    bigger = df.claude.estimate("Read: {review}", schema=schema, model="opus", max_tokens=200)
    assert bigger.cost_usd > estimate.cost_usd              # the price follows the model


# -- batches: waiting, rows so far, re-attaching ----------------------------------------------------
def test_to_dataframe_on_a_running_batch_waits_or_gives_rows_so_far(local, upstream):
    upstream.responder = lambda rec: Reply.text("slow " + rec.user_texts()[-1], hang=1.0)
    job = claude_nb.batch(["one", "two", "three"], prompt="Say {input}", model="haiku",
                          max_tokens=20, cache=False)
    early = job.to_dataframe(wait=False)
    assert list(early["input"]) == ["one", "two", "three"] and len(early) == 3
    assert set(early["status"]) <= {"processing", "succeeded"} and "processing" in set(early["status"])
    assert early.loc[early["status"] == "processing", "error"].isna().all()
    frame = job.to_dataframe(progress=False)                 # waits for the end
    assert job.ended and list(frame["status"]) == ["succeeded"] * 3
    assert list(frame["text"]) == ["slow Say one", "slow Say two", "slow Say three"]


def test_calling_again_reattaches_to_the_running_batch(local, upstream, capsys):
    from claude_nb.kernel.accessor import ClaudeAccessor
    upstream.responder = lambda rec: Reply.text("late", hang=1.5)
    df = pd.DataFrame({"q": ["x", "y"]})
    accessor = ClaudeAccessor(df)
    call = accessor._build("map", "Q {q}", {"model": "haiku", "max_tokens": 20})
    first = accessor._job(call, cache=True)         # what a call interrupted by a restart left
    # a new kernel calls the same thing: it finds the batch still running and waits for it
    answers = df.claude.map("Q {q}", model="haiku", max_tokens=20, progress=False)
    assert "re-attached to batch " + first.id in capsys.readouterr().err
    assert list(answers) == ["late", "late"] and answers.attrs["claude_nb"]["batch_id"] == first.id
    assert len(upstream.message_requests) == 2


# -- %%claude --cache ------------------------------------------------------------------------
@pytest.fixture
def shell(local):
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("claude_nb")
    ip.run_line_magic("config", "ClaudeMagics.display = 'update'")
    yield ip
    ip.extension_manager.unload_extension("claude_nb")
    ip.history_manager.end_session()
    ip.clear_instance()


def test_magic_cache_is_opt_in_and_the_hit_is_in_the_cell_metadata(shell, upstream):
    def cell(line):
        with capture_output() as cap:
            shell.run_cell_magic("claude", line + " --new", "What is 6 x 7?")
        return cap.outputs[-1].metadata["claude_nb"]
    assert cell("")["cached"] is False
    assert cell("--cache")["cached"] is False                # the first cached cell stores it
    hit = cell("--cache")
    assert hit["cached"] is True and hit["cost_usd"] == 0.0
    assert len(upstream.message_requests) == 2
    shell.run_line_magic("config", "ClaudeMagics.cache = True")
    assert cell("")["cached"] is True
    assert cell("--no-cache")["cached"] is False
    assert len(upstream.message_requests) == 3


def test_magic_json_format_asks_for_structured_output(shell, upstream):
    upstream.push(Reply.tool_use("StructuredOutput", {"planet": "Mars", "moons": 2}))
    with capture_output():
        shell.run_cell_magic("claude", "--format json -o facts", "Mars facts")
    assert shell.user_ns["facts"] == {"planet": "Mars", "moons": 2}
    sent = upstream.message_requests[-1]
    tool = next(t for t in sent.body["tools"] if t["name"] == "StructuredOutput")
    assert tool["input_schema"]["type"] == "object"
    assert "Answer with JSON only" not in sent.system_text()


# -- charts --------------------------------------------------------------------------------------
def test_reports_plot_in_one_call(scripted):
    import matplotlib
    matplotlib.use("Agg")
    products().claude.map("Echo {review}", model="haiku", max_tokens=50, progress=False)
    products().claude.map("Echo {review}", model="haiku", max_tokens=50, progress=False)
    usage = claude_nb.usage_report(bucket_width="1h")
    assert usage["cached_requests"].sum() == 3 and usage["output_tokens"].sum() == 3 * 12
    ax = claude_nb.plot_usage(usage)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "output" in labels and "output from the result cache" in labels
    assert "3 requests answered from the result cache" in " ".join(t.get_text() for t in ax.texts)
    cost_ax = claude_nb.plot_cost()
    assert cost_ax.get_ylabel() == "USD" and len(cost_ax.patches) >= 1
