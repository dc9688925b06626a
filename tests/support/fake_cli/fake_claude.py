"""A stand-in for the `claude` CLI that misbehaves on purpose, for faults the real CLI cannot
be made to show: crashing, printing garbage, exiting early, hanging, leaving children behind,
or reporting nonsense in its `result` line.

Launched through a small shell wrapper (see tests/reliability/conftest.py) with the mode in
$FAKE_CLAUDE_MODE. Every launch appends its pid to $FAKE_CLAUDE_PIDS (when set), so tests can
check the process table for what it left behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MODE = os.environ.get("FAKE_CLAUDE_MODE", "echo")

if "--version" in sys.argv[1:]:
    print(os.environ.get("FAKE_CLAUDE_VERSION", "2.1.332") + " (Claude Code)")
    sys.exit(0)
if "-p" in sys.argv[1:] and "--max-turns" not in sys.argv[1:]:
    # The bridge's `initialize` probe for the model aliases (every request run has --max-turns):
    # answer it with no models, so the measured alias table applies.
    request = json.loads(sys.stdin.readline() or "{}")
    print(json.dumps({"type": "control_response", "response": {
        "subtype": "success", "request_id": request.get("request_id"), "response": {"models": []}}}))
    sys.exit(0)


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stream(event: dict) -> None:
    emit({"type": "stream_event", "event": event})


def init() -> None:
    emit({"type": "system", "subtype": "init", "model": "claude-sonnet-5", "tools": []})


def read_prompt() -> str:
    """The text of the first user turn on stdin (the bridge keeps stdin open)."""
    line = sys.stdin.readline()
    try:
        content = json.loads(line)["message"]["content"]
    except (ValueError, KeyError, TypeError):
        return ""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def message_start() -> None:
    stream({"type": "message_start", "message": {
        "id": "msg_fakecli", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1}}})


def text_block(text: str, *, close: bool = True) -> None:
    stream({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for i in range(0, len(text), 5):
        stream({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text[i:i + 5]}})
    if close:
        stream({"type": "content_block_stop", "index": 0})


def finish_message(text: str) -> None:
    stream({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 7}})
    stream({"type": "message_stop"})
    emit({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}})


def success_result(text: str) -> None:
    emit({"type": "result", "subtype": "success", "is_error": False, "api_error_status": None,
          "result": text, "usage": {"input_tokens": 10, "output_tokens": 7},
          "total_cost_usd": 0.0001, "modelUsage": {"claude-sonnet-5": {}}, "duration_ms": 5})


def hang_forever() -> None:
    while True:
        time.sleep(3600)


def main() -> int:
    pids = os.environ.get("FAKE_CLAUDE_PIDS")
    if pids:
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")

    if MODE == "exit_at_once":          # dies before reading anything, nothing on stdout
        sys.stderr.write("fatal: could not start\n")
        return 3
    if MODE == "env_dump":              # prints what it was given, then fails
        dump = os.environ.get("FAKE_CLAUDE_DUMP")
        if dump:
            with open(dump, "w") as f:
                json.dump({"argv": sys.argv, "env": dict(os.environ), "stdin": sys.stdin.readline()}, f)
        sys.stderr.write("argv: " + json.dumps(sys.argv) + "\n")
        for key, value in sorted(os.environ.items()):
            sys.stderr.write(f"env {key}={value}\n")
        return 1

    prompt = read_prompt()
    init()
    answer = "You said: " + prompt

    if MODE == "echo":                  # well behaved: the control case
        message_start()
        text_block(answer)
        finish_message(answer)
        success_result(answer)
        sys.stdin.read()                # like the real CLI: wait for the next turn or EOF
        return 0
    if MODE == "crash":                 # segfaults in the middle of the answer
        message_start()
        text_block(answer, close=False)
        sys.stderr.write("Segmentation fault (core dumped)\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
        return 139
    if MODE == "crash_before_answer":   # aborts after init, before any event
        os.kill(os.getpid(), signal.SIGABRT)
        return 134
    if MODE == "garbage":               # nothing but unparsable or misshapen output
        out = sys.stdout.buffer
        out.write(b"\xff\xfe\x00garbage \xc3\x28 not utf-8\n")
        out.write(b"{\"type\": \"stream_event\", \"event\": \n")
        out.write(b"[1, 2, 3]\n\"just a string\"\nnull\n42\n")
        out.write(b"{\"type\": \"stream_event\", \"event\": \"not an object\"}\n")
        out.write(b"{\"type\": \"stream_event\", \"event\": {\"type\": \"content_block_delta\", "
                  b"\"index\": 7, \"delta\": {\"type\": \"text_delta\", \"text\": \"orphan\"}}}\n")
        out.write(b"{\"type\": 12, \"subtype\": []}\n")
        out.write(os.urandom(512).replace(b"\n", b"") + b"\n")
        out.flush()
        return 0
    if MODE == "garbage_result":        # a result line whose fields have the wrong types
        emit({"type": "result", "subtype": ["odd"], "is_error": True, "api_error_status": "boom",
              "result": {"nested": "object"}, "usage": "lots", "total_cost_usd": "free",
              "modelUsage": [1, 2]})
        return 1
    if MODE == "garbage_success":       # claims success with nonsense usage and no answer
        emit({"type": "result", "subtype": "success", "is_error": False, "api_error_status": None,
              "result": None, "usage": {"input_tokens": "many", "output_tokens": None},
              "total_cost_usd": "NaN", "modelUsage": "x"})
        return 0
    if MODE == "exit_early":            # reads the prompt, says hello, leaves without an answer
        return 0
    if MODE == "partial_then_exit":     # half an answer, then exit 0 without a result
        message_start()
        text_block(answer[: max(1, len(answer) // 2)], close=False)
        return 0
    if MODE == "partial_then_success":  # half an answer, then claims success (a cut stream)
        message_start()
        text_block(answer[: max(1, len(answer) // 2)], close=False)
        success_result(answer[: max(1, len(answer) // 2)])
        return 0
    if MODE == "hang":                  # never answers and ignores SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        hang_forever()
    if MODE == "hang_mid_answer":       # starts answering, then never finishes; ignores SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        message_start()
        text_block(answer, close=False)
        hang_forever()
    if MODE == "grandchild":            # leaves a child of its own, then hangs
        child = subprocess.Popen(["sleep", "300"])
        kids = os.environ.get("FAKE_CLAUDE_GRANDCHILDREN")
        if kids:
            with open(kids, "a") as f:
                f.write(f"{child.pid}\n")
        message_start()
        text_block(answer, close=False)
        hang_forever()
    sys.stderr.write(f"fake claude: unknown mode {MODE!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
