"""What the upstream receives for thinking and effort, per model, through the bridge.

Runs the real CLI against the recording upstream (tests/support/fake_upstream.py) and prints the
markdown table kept in docs/compatibility.md. Rerun it when the pinned CLI version changes:

    /tmp/venv/bin/python bench/fidelity_matrix.py [model ...]
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))      # the repo: claude_nb and tests.support

from tests.support.fake_upstream import FakeUpstream  # noqa: E402

CLI = ROOT / "tests/cli/node_modules/@anthropic-ai/claude-code-linux-x64/claude"

REQUESTS = [
    ("no thinking, no effort", {}),
    ("thinking enabled, budget 2000", {"thinking": {"type": "enabled", "budget_tokens": 2000}}),
    ("thinking adaptive", {"thinking": {"type": "adaptive"}}),
    ("effort low", {"output_config": {"effort": "low"}}),
]


def cell(value) -> str:
    return "—" if value is None else "`" + json.dumps(value, separators=(",", ":")) + "`"


async def measure(models: list[str]) -> None:
    upstream = FakeUpstream()
    os.environ.update(ANTHROPIC_BASE_URL=upstream.url, ANTHROPIC_API_KEY="measure",
                      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                      CLAUDE_CONFIG_DIR=tempfile.mkdtemp(prefix="claudenb-measure-"))
    os.environ.setdefault("CLAUDE_NB_CLI", str(CLI))
    os.environ.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    from claude_nb.bridge import ClaudeBridge
    bridge = ClaudeBridge()
    print("| model (request) | upstream model | request | upstream `thinking` "
          "| upstream `output_config` | upstream `temperature` |")
    print("|---|---|---|---|---|---|")
    for model in models:
        for label, extra in REQUESTS:
            upstream.reset()
            body = {"model": model, "max_tokens": 4000,
                    "messages": [{"role": "user", "content": "hi"}], **extra}
            await bridge.create(body)
            sent = upstream.message_requests[-1].body
            print(f"| `{model}` | `{sent['model']}` | {label} | {cell(sent.get('thinking'))} "
                  f"| {cell(sent.get('output_config'))} | {cell(sent.get('temperature'))} |")
    upstream.close()


if __name__ == "__main__":
    from claude_nb.protocol.models import MODELS
    chosen = sys.argv[1:] or ["sonnet", "opus", "haiku"] + [m.id for m in MODELS]
    asyncio.run(measure(chosen))
