"""The model catalogue follows the installed CLI: /v1/models validates strictly against the
current SDKs' types with true capabilities, aliases mean what the CLI runs, retired models are
refused as the API refuses them, and responses and the usage ledger name the model that ran.

Run on each end of the supported window (CLAUDE_NB_TEST_CLI): expectations that depend on the
CLI are read from the installed CLI itself (its version, its `initialize` reply, what it sends
upstream).
"""
import json
import os
import subprocess
import typing

import anthropic
import httpx
import openai
import pydantic
import pytest
from anthropic.types import ModelInfo
from anthropic.types.beta import BetaModelInfo

from claude_nb.bridge.cli_info import cli_info
from claude_nb.bridge.cli_models import aliases_from_initialize, ask_initialize, cli_models
from claude_nb.protocol import models as catalogue
from claude_nb.protocol.errors import NotFound

ALL_LIFECYCLES = "lifecycle[]=active&lifecycle[]=deprecated&lifecycle[]=retired"
RETIRED = {m.id for m in catalogue.MODELS if m.lifecycle == "retired"}


@pytest.fixture(autouse=True)
def _restore_aliases():
    """Learning a CLI's aliases changes the process-wide catalogue: put it back afterwards."""
    saved = dict(catalogue.ALIASES)
    yield
    catalogue.ALIASES.clear()
    catalogue.ALIASES.update(saved)


async def get_json(sdk_base, token, *path, query: str = ""):
    """GET on the server as any HTTP client sends it (repeated `lifecycle[]` keys included)."""
    url = sdk_base + "/".join(path) + (f"?{query}" if query else "")
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"x-api-key": token})
    assert response.status_code == 200, response.text
    return response.json()


# -- strict validation against the SDKs' types ----------------------------------------------

def _model_class(annotation):
    """The pydantic model inside Optional[...] / Union[...], if any."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def missing_or_unknown(data: dict, model: type[pydantic.BaseModel], where: str = "") -> list[str]:
    """Every field the type declares, optional ones included, must be present ("keys are always
    present for all known capabilities"), and nothing it does not know may appear inside a
    nested object (the SDK would silently accept it as an extra)."""
    problems = []
    for name, field in model.model_fields.items():
        if name not in data:
            problems.append(f"{where}{name} missing")
            continue
        inner = _model_class(field.annotation)
        if inner is not None and isinstance(data[name], dict):
            problems += missing_or_unknown(data[name], inner, f"{where}{name}.")
    if where:
        problems += [f"{where}{key} unknown" for key in data if key not in model.model_fields]
    return problems


def assert_valid_everywhere(entry: dict) -> None:
    raw = json.dumps(entry)
    # Strict, from the wire (a JSON body is what the SDK validates; strict mode takes RFC 3339
    # strings for datetimes only in JSON).
    anthropic_model = ModelInfo.model_validate_json(raw, strict=True)
    BetaModelInfo.model_validate_json(raw, strict=True)
    openai.types.Model.model_validate_json(raw, strict=True)
    assert anthropic_model.capabilities is not None
    assert missing_or_unknown(entry, BetaModelInfo) == []
    assert missing_or_unknown({k: v for k, v in entry.items() if k != "allowed_fallback_models"}
                              | {"capabilities": {k: v for k, v in entry["capabilities"].items()
                                                  if k != "compaction"}}, ModelInfo) == []


async def test_every_listed_and_retrieved_entry_validates_strictly(jp_fetch, cli_env, sdk_base, token):
    listed = await get_json(sdk_base, token, "v1", "models", query=ALL_LIFECYCLES + "&limit=1000")
    assert not listed["has_more"]
    ids = [entry["id"] for entry in listed["data"]]
    assert ids == [m.id for m in catalogue.MODELS]          # newest first, all of them
    for entry in listed["data"]:
        assert_valid_everywhere(entry)
        single = await get_json(sdk_base, token, "v1", "models", entry["id"])
        assert single == entry
        assert_valid_everywhere(single)


async def test_both_sdks_read_the_list(jp_fetch, cli_env, sdk_base, token):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    listed = [m async for m in client.models.list(limit=1000)]
    assert {m.lifecycle for m in listed} <= {"active", "deprecated"}
    assert all(m.capabilities and m.capabilities.thinking.types for m in listed)
    beta = [m async for m in client.beta.models.list(limit=1000)]
    assert [m.id for m in beta] == [m.id for m in listed]
    assert all(m.capabilities.compaction.supported is False for m in beta)
    oai = openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key=token, max_retries=0)
    oai_ids = [m.id async for m in oai.models.list()]
    assert oai_ids == [m.id for m in listed]


# -- true capabilities ----------------------------------------------------------------------

def test_capabilities_agree_with_what_the_installed_cli_says_of_its_models(claude_cli, cli_env):
    """The CLI's `initialize` reply describes the models its aliases run (adaptive thinking,
    effort levels, and on newer CLIs whether thinking can be switched off)."""
    offered = ask_initialize(claude_cli)
    assert offered, "the CLI's initialize reply lists its models"
    checked = 0
    for entry in offered:
        model_id = entry["resolvedModel"].removesuffix("[1m]")
        info = catalogue._BY_ID.get(model_id)
        if info is None:
            continue
        caps = info.capabilities()
        adaptive = caps["thinking"]["types"]["adaptive"]["supported"]
        assert adaptive is bool(entry.get("supportsAdaptiveThinking")), model_id
        levels = entry.get("supportedEffortLevels") or []
        assert caps["effort"]["supported"] is bool(entry.get("supportsEffort")), model_id
        assert [lv for lv in catalogue.EFFORT_LEVELS if caps["effort"][lv]["supported"]] == levels, model_id
        if "supportsThinkingOff" in entry:
            assert caps["thinking"]["types"]["disabled"]["supported"] is entry["supportsThinkingOff"], model_id
        checked += 1
    assert checked >= 3


def test_what_the_bridge_cannot_do_is_not_claimed():
    for info in catalogue.MODELS:
        caps = info.capabilities()
        assert caps["server_tools"] == {"supported": False, "code_execution": {"supported": False},
                                        "web_search": {"supported": False}}
        assert caps["code_execution"]["supported"] is False
        assert caps["context_management"]["supported"] is False
        assert caps["thinking"]["types"]["between_tools"]["supported"] is False   # refused (400)
        assert caps["batch"]["supported"] and caps["structured_outputs"]["supported"]
        assert caps["image_input"]["supported"] and caps["pdf_input"]["supported"]
    by_id = {m.id: m.capabilities() for m in catalogue.MODELS}
    # Budgets (`enabled`) only up to the 4.6 generation; the 4.5 family has no adaptive thinking.
    assert by_id["claude-sonnet-4-6"]["thinking"]["types"]["enabled"]["supported"] is True
    assert by_id["claude-opus-4-8"]["thinking"]["types"]["enabled"]["supported"] is False
    assert by_id["claude-opus-4-5-20251101"]["thinking"]["types"]["adaptive"]["supported"] is False
    assert by_id["claude-opus-4-6"]["effort"]["xhigh"]["supported"] is False
    assert by_id["claude-opus-4-7"]["effort"]["xhigh"]["supported"] is True
    assert by_id["claude-sonnet-4-5-20250929"]["effort"]["supported"] is False


# -- lifecycle: the 4-5 family's end of life ---------------------------------------------------

async def test_retired_models_are_listed_only_when_asked_and_still_retrievable(jp_fetch, cli_env, sdk_base,
                                                                                token):
    default = await get_json(sdk_base, token, "v1", "models", query="limit=1000")
    assert RETIRED and not RETIRED & {e["id"] for e in default["data"]}
    retired = await get_json(sdk_base, token, "v1", "models", query="lifecycle[]=retired&limit=1000")
    assert {e["id"] for e in retired["data"]} == RETIRED
    for model_id in RETIRED:
        entry = await get_json(sdk_base, token, "v1", "models", model_id)
        assert entry["lifecycle"] == "retired" and entry["retires_at"] <= "2026-12-03"
    deprecated = await get_json(sdk_base, token, "v1", "models", "claude-opus-4-5")
    assert deprecated["id"] == "claude-opus-4-5-20251101" and deprecated["lifecycle"] == "deprecated"


@pytest.mark.parametrize("model", sorted(RETIRED) + ["claude-sonnet-4-5", "claude-haiku-4-5"])
async def test_a_request_for_a_retired_model_gets_the_apis_404(jp_fetch, cli_env, sdk_base, token,
                                                               upstream, model):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model=model, max_tokens=16,
                                     messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body["error"]
    assert error["type"] == "not_found_error" and error["message"].startswith(f"model: {model}")
    assert upstream.message_requests == []          # refused here, nothing ran


async def test_a_deprecated_model_still_runs(jp_fetch, cli_env, sdk_base, token, upstream):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    message = await client.messages.create(model="claude-opus-4-5", max_tokens=16,
                                           messages=[{"role": "user", "content": "hi"}])
    assert message.model == "claude-opus-4-5-20251101"
    assert upstream.message_requests[-1].body["model"] == "claude-opus-4-5-20251101"


# -- aliases as the installed CLI resolves them ----------------------------------------------

def _what_the_cli_runs(cli: str, alias: str, upstream, workdir) -> str:
    """Run the CLI itself with `--model alias` and read the recording upstream's `model`."""
    upstream.reset()
    user = {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}}
    done = subprocess.run([cli, "-p", "--input-format", "stream-json", "--output-format",
                           "stream-json", "--verbose", "--tools", "", "--model", alias,
                           "--no-session-persistence"], input=json.dumps(user) + "\n",
                          capture_output=True, text=True, timeout=120, env=os.environ.copy(),
                          cwd=workdir)
    assert done.returncode == 0, done.stderr
    [sent] = upstream.message_requests
    return sent.body["model"]


@pytest.mark.parametrize("alias", catalogue.CLI_ALIASES)
def test_aliases_are_learned_as_the_installed_cli_resolves_them(claude_cli, cli_env, upstream, alias,
                                                                tmp_path):
    learned = cli_models(claude_cli)
    assert learned.aliases[alias] == _what_the_cli_runs(claude_cli, alias, upstream, tmp_path)
    assert catalogue.ALIASES[alias] == learned.aliases[alias]       # installed in the catalogue
    version = cli_info(claude_cli).version
    if version in catalogue.CLI_ALIAS_TABLES:          # a measured version: its table agrees
        assert learned.aliases == catalogue.CLI_ALIAS_TABLES[version]


def test_the_initialize_reply_is_read_where_it_names_the_alias(claude_cli, cli_env):
    from_cli = aliases_from_initialize(ask_initialize(claude_cli))
    assert from_cli["sonnet"] == cli_models(claude_cli).aliases["sonnet"]
    # `opus[1m]` counts for `opus`, without the CLI's 1M-context suffix.
    assert aliases_from_initialize([{"value": "opus[1m]", "resolvedModel": "claude-opus-4-8[1m]"},
                                    {"value": "default", "resolvedModel": "claude-opus-4-8[1m]"}]) \
        == {"opus": "claude-opus-4-8"}


def test_the_newest_table_serves_versions_newer_than_measured():
    newest = max(catalogue.CLI_ALIAS_TABLES)
    later = (newest[0], newest[1], newest[2] + 100)
    assert catalogue.alias_table_for(later) == catalogue.CLI_ALIAS_TABLES[newest]
    assert catalogue.alias_table_for(None) == catalogue.CLI_ALIAS_TABLES[newest]


# -- the model that ran, in responses and the ledger ----------------------------------------

@pytest.mark.parametrize("alias", catalogue.CLI_ALIASES)
async def test_responses_and_the_ledger_name_the_model_that_ran(bridge, upstream, claude_cli, alias):
    ran = cli_models(claude_cli).aliases[alias]
    runs = []
    bridge.run_listeners.append(runs.append)
    body = {"model": alias, "max_tokens": 30, "messages": [{"role": "user", "content": "hi"}]}
    if ran in RETIRED:
        # e.g. `haiku` on 2.1.197: the CLI would run a retired model, which the API refuses.
        with pytest.raises(NotFound) as caught:
            await bridge.create(body)
        assert f"runs it as {ran}" in str(caught.value) and "Upgrade the CLI" in str(caught.value)
        assert upstream.message_requests == [] and runs == []
        return
    events = [e async for e in bridge.stream(dict(body, stream=True))]
    [start] = [e for e in events if e.get("type") == "message_start"]
    assert start["message"]["model"] == ran
    message = await bridge.create(body)
    assert message["model"] == ran
    assert [r.body["model"] for r in upstream.message_requests] == [ran, ran]
    assert [r.model for r in runs] == [ran, ran]


async def test_retrieving_an_alias_answers_with_the_model_the_cli_runs(jp_fetch, cli_env, claude_cli,
                                                                       sdk_base, token):
    for alias in catalogue.CLI_ALIASES:
        entry = await get_json(sdk_base, token, "v1", "models", alias)
        assert entry["id"] == cli_models(claude_cli).aliases[alias]
