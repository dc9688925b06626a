"""The Jupyter side of claude-nb: an Anthropic-compatible API at {base_url}v1/ served by the
Jupyter server over the Claude Code CLI. Enabled by `pip install` (see jupyter-config/)."""
from claude_nb._version import __version__  # noqa: F401


def _jupyter_server_extension_points():
    from .app import ClaudeNbApp
    return [{"module": "server_ext", "app": ClaudeNbApp}]
