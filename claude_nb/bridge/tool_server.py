"""A stdio MCP server that advertises the API client's tools to the CLI and never runs them.

The bridge stops at the model's `tool_use` and hands it to the client; if the CLI ever asks this
server to call a tool, it gets an error and nothing executes. Standard library only: it is
started with the same Python as the server.
"""
import json
import os
import sys

PROTOCOL_VERSION = "2025-06-18"


def main() -> None:
    tools = json.loads(os.environ.get("CLAUDE_NB_TOOLS") or "[]")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict) or "id" not in msg:
            continue                      # notifications need no answer
        method = msg.get("method")
        if method == "initialize":
            version = (msg.get("params") or {}).get("protocolVersion") or PROTOCOL_VERSION
            result = {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                      "serverInfo": {"name": "client", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": tools}
        elif method == "tools/call":
            result = {"isError": True, "content": [{"type": "text", "text":
                      "This tool is executed by the API client, not here."}]}
        elif method == "ping":
            result = {}
        else:
            reply = {"jsonrpc": "2.0", "id": msg["id"],
                     "error": {"code": -32601, "message": f"method not found: {method}"}}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            continue
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
