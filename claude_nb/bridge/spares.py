"""Spares: `claude` processes started before the request they will serve is known, set up for it
when it arrives, and (where the CLI allows) brought back to an empty conversation afterwards so
the same process answers the next request of its shape.

Everything here was measured against the recording fake upstream (bench/README.md, "Spares"):
a request answered this way reaches upstream exactly as from a process launched for it (the
whole body and headers, ids aside), with no extra upstream call.

- Set on a started process, before its first user turn, on every supported CLI:
  the launch environment that depends on the request (max_tokens, thinking, effort) through
  `apply_flag_settings {env}`; the system prompt and the structured-output schema through
  `initialize`; a thinking budget and display through `set_max_thinking_tokens` (the CLI reads
  MAX_THINKING_TOKENS and --thinking-display only at start); client tools through
  `mcp_set_servers`.
- The model: only on CLIs with claimable spares (`--await-claim`, 2.1.332): there the process is
  claimed with `claim_session` (which also takes the system prompt) and `set_model` before the
  first turn is applied as `--model` is at start. On older CLIs `set_model` writes `/model`
  command turns into the conversation, so a spare serves one model there.
- `rewind_conversation` to the first user turn leaves an empty conversation on 2.1.332 (the
  next request equals a fresh process's); 2.1.197 refuses it ("no preceding assistant"). A
  rewound process keeps what it was set up with: a re-sent `initialize` does not change its
  system prompt, so it serves its own shape again, nothing else.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from dataclasses import dataclass

from .cli_info import CliInfo
from .command import LaunchSpec

# The launch environment variables that depend on the request (command.build_env sets or
# removes them from the LaunchSpec). A spare starts without them and gets the request's values
# through `apply_flag_settings {env}`, which the CLI reads per request.
SPEC_ENV_KEYS = ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "MAX_THINKING_TOKENS",
                 "CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING", "CLAUDE_CODE_DISABLE_THINKING",
                 "CLAUDE_CODE_THINKING_DISPLAY_UPDATES", "CLAUDE_CODE_EFFORT_LEVEL")

# The CLI that first had both claimable spares and a rewind back to an empty conversation (the
# newest tested; 2.1.197 has neither).
CLAIM_SINCE = (2, 1, 332)

# A reused process serves at most this many requests, then ends (bounds anything that grows).
MAX_REQUESTS_PER_PROCESS = 200

CONTROL_TIMEOUT = 15.0


@dataclass(frozen=True)
class Capabilities:
    claim: bool      # the model and system prompt are set when the spare is claimed
    rewind: bool     # a finished process goes back to an empty conversation and is reused


def capabilities(info: CliInfo | None) -> Capabilities:
    newer = info is None or info.at_least(*CLAIM_SINCE)
    return Capabilities(claim=newer, rewind=newer)


def spare_spec(model: str) -> LaunchSpec:
    """What a spare is started with: everything that a request sets later is left neutral (no
    system prompt, thinking not switched off, no tools, no schema)."""
    return LaunchSpec(model=model, system_prompt="", thinking="adaptive")


def spare_env(env: dict[str, str]) -> dict[str, str]:
    """A spare's environment: the launch environment without the request-dependent keys."""
    return {k: v for k, v in env.items() if k not in SPEC_ENV_KEYS}


class SetupRefused(Exception):
    """The process refused part of the setup: it must not answer the request."""


def setup_requests(spec: LaunchSpec, request_env: dict[str, str], *, caps: Capabilities,
                   spare_model: str, workdir: str) -> list[dict]:
    """The control requests, in order, that make a spare answer like a process launched with
    `spec` (and `request_env`, the launch environment that spec would get)."""
    requests: list[dict] = [{"subtype": "apply_flag_settings", "settings": {
        "env": {k: v for k, v in request_env.items() if k in SPEC_ENV_KEYS}}}]
    system = [spec.system_prompt] if spec.system_prompt else []
    if caps.claim:
        if spec.json_schema:
            requests.append({"subtype": "initialize", "jsonSchema": json.loads(spec.json_schema)})
        requests.append({"subtype": "claim_session", "cwd": workdir, "system_prompt": system})
        if spec.model != spare_model:
            requests.append({"subtype": "set_model", "model": spec.model})
    else:
        if spec.model != spare_model:
            raise ValueError("a spare of this CLI serves its own model only")
        init = {"subtype": "initialize", "systemPrompt": system}
        if spec.json_schema:
            init["jsonSchema"] = json.loads(spec.json_schema)
        requests.append(init)
    thinking: dict = {}
    if spec.thinking == "enabled":
        thinking["max_thinking_tokens"] = spec.thinking_budget
    if spec.thinking_display and spec.thinking != "disabled":
        thinking["thinking_display"] = spec.thinking_display
    if thinking:
        requests.append({"subtype": "set_max_thinking_tokens", **thinking})
    if spec.mcp_config:
        requests.append({"subtype": "mcp_set_servers",
                         "servers": json.loads(spec.mcp_config)["mcpServers"]})
    return requests


def new_turn_id() -> str:
    return str(uuid.uuid4())


async def exchange(proc, requests: list[dict], timeout: float = CONTROL_TIMEOUT) -> list[dict]:
    """Send control requests to a started process (all at once: the CLI answers them in order)
    and return their responses. Lines that are not one of the answers (status notes a parked
    process prints) are dropped: no turn has started, so none belongs to a request.

    Raises SetupRefused when one is refused or the process ends first, asyncio.TimeoutError when
    the answers do not come in time."""
    ids = [f"claude_nb_{uuid.uuid4().hex[:12]}" for _ in requests]
    payload = b"".join(json.dumps({"type": "control_request", "request_id": rid, "request": req},
                                  ensure_ascii=False).encode("utf-8") + b"\n"
                       for rid, req in zip(ids, requests))
    try:
        proc.proc.stdin.write(payload)
        await proc.proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
        raise SetupRefused(f"the process took no control request ({exc})") from None
    answers: dict[str, dict] = {}

    async def collect():
        while len(answers) < len(ids):
            raw = await proc.proc.stdout.readline()
            if not raw:
                raise SetupRefused("the process ended during setup"
                                   + (f" ({proc.diagnostics()})" if proc.diagnostics() else ""))
            if b'"control_response"' not in raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            response = line.get("response") if isinstance(line, dict) else None
            if isinstance(response, dict) and response.get("request_id") in ids:
                answers[response["request_id"]] = response

    await asyncio.wait_for(collect(), timeout)
    out = []
    for rid, req in zip(ids, requests):
        response = answers[rid]
        if response.get("subtype") != "success":
            raise SetupRefused(f"{req['subtype']} was refused: {response.get('error')}")
        out.append(response.get("response") or {})
    return out


async def set_up(proc, spec: LaunchSpec, request_env: dict[str, str], *, caps: Capabilities,
                 spare_model: str) -> None:
    """Make a waiting spare answer like a process launched for `spec`; SetupRefused if it
    cannot (the caller then ends it and starts a process for the request)."""
    requests = setup_requests(spec, request_env, caps=caps, spare_model=spare_model,
                              workdir=proc.workdir)
    answers = await exchange(proc, requests)
    for request, answer in zip(requests, answers):
        if request["subtype"] == "claim_session" and answer.get("status") != "ok":
            raise SetupRefused(f"claim_session answered {answer!r}")
        if request["subtype"] == "mcp_set_servers" and answer.get("errors"):
            raise SetupRefused(f"the client tools' MCP server did not start: {answer['errors']}")


async def rewind(proc, first_turn: str) -> None:
    """Back to an empty conversation: everything from the request's first user turn on goes."""
    answer, = await exchange(proc, [{"subtype": "rewind_conversation",
                                     "target_message_uuid": first_turn}])
    if answer.get("rewound") is not True:
        raise SetupRefused(f"rewind_conversation answered {answer!r}")


def with_spec(spec: LaunchSpec, **changes) -> LaunchSpec:
    return dataclasses.replace(spec, **changes)
