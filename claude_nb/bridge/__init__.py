"""The Claude Code CLI bridge: command line, stream-json codec, process lifecycle, queue."""
from .bridge import ClaudeBridge, RunRecord  # noqa: F401
from .command import CliNotFound, LaunchSpec, find_cli  # noqa: F401
