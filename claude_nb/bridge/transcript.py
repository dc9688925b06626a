"""Prior turns as a synthetic Claude Code session transcript, resumed with `--resume`.

The CLI then sends every earlier turn upstream as its own user/assistant message (measured with
CLI 2.1.197 against the recording upstream), instead of one flattened prompt. The file lives in
the CLI's config dir (which also holds the user's login, so it is not relocated) and is removed
when the run ends.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone


def config_dir(env: dict | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")


def project_dir(cwd: str, env: dict | None = None) -> str:
    # The CLI names a project folder after its cwd with every non-alphanumeric char as "-".
    return os.path.join(config_dir(env), "projects", re.sub(r"[^a-zA-Z0-9]", "-", cwd))


def write_transcript(turns: list[dict], cwd: str, *, env: dict | None = None,
                     cli_version: str = "2.1.197") -> tuple[str, str]:
    """Write `turns` ({role, content}) as a session; returns (session_id, file path)."""
    session_id = str(uuid.uuid4())
    folder = project_dir(cwd, env)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, session_id + ".jsonl")
    parent = None
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with open(path, "w", encoding="utf-8") as f:
        for turn in turns:
            entry_id = str(uuid.uuid4())
            content = turn["content"]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            message = {"role": turn["role"], "content": content}
            if turn["role"] == "assistant":
                message.update({"type": "message", "model": turn.get("model", "<synthetic>"),
                                "id": "msg_" + uuid.uuid4().hex[:24], "stop_reason": "end_turn",
                                "stop_sequence": None,
                                "usage": {"input_tokens": 0, "output_tokens": 0}})
            f.write(json.dumps({
                "type": turn["role"], "message": message, "uuid": entry_id, "parentUuid": parent,
                "sessionId": session_id, "cwd": cwd, "timestamp": now, "isSidechain": False,
                "userType": "external", "version": cli_version,
            }, ensure_ascii=False) + "\n")
            parent = entry_id
    return session_id, path


def remove_transcript(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    try:
        # The CLI may leave a memory/ folder there; the folder is ours alone (private cwd).
        for root, dirs, files in os.walk(folder, topdown=False):
            for name in files:
                os.remove(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(folder)
    except OSError:
        pass
