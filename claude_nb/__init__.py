"""claude-nb: Claude from Jupyter through the Claude Code CLI.

The core (protocol, bridge, store) and the IPython side. Importing this package never imports
tornado or jupyter_server, so it works in any kernel.

    %load_ext claude_nb                      # %%claude cells, %claude help
    from claude_nb import claude             # claude.message(...), claude.message_stream(...)
    claude_nb.batch(df, prompt="... {column} ...").wait().to_dataframe()
    claude_nb.usage_report(), claude_nb.cost_report()
    claude_nb.anthropic_client()             # the official SDK, pointed at the Jupyter server
    claude_nb.chat()                         # a chat panel (ipywidgets) with a Stop button
    claude_nb.quota()                        # the plan's rate-limit windows (subscription logins)
    df.claude.extract("... {column} ...", {"field": int, "kind": ["a", "b"]})   # typed columns
    df.claude.map / classify / filter / estimate(..., max_cost_usd=0.50)
    claude_nb.cache_clear(), claude_nb.plot_usage(), claude_nb.plot_cost()
    claude_nb.agent("...")                   # Claude works on the kernel (asks before running code)
"""
from ._version import __version__  # noqa: F401
from .kernel.client import Answer, AnswerStream, Claude, anthropic_client, claude  # noqa: F401
from .kernel.errors import ClaudeError  # noqa: F401
from .kernel.import_hook import after_import
from .kernel.transports import connect  # noqa: F401

_LAZY = {
    "batch": "kernel.jobs", "batch_job": "kernel.jobs", "BatchJob": "kernel.jobs",
    "usage_report": "kernel.frames", "cost_report": "kernel.frames",
    "ChatWidget": "kernel.widgets", "chat": "kernel.widgets",
    "ClaudeMagics": "kernel.magics",
    "quota": "kernel.quota",
    "cache_clear": "kernel.caching", "cache_info": "kernel.caching",
    "plot_usage": "kernel.charts", "plot_cost": "kernel.charts",
    "Estimate": "kernel.estimate", "CostLimitExceeded": "kernel.estimate",
    "agent": "kernel.magics",
}

__all__ = ["Answer", "AnswerStream", "Claude", "ClaudeError", "anthropic_client", "claude",
           "connect", *_LAZY]


def __getattr__(name):
    # pandas and ipywidgets are imported only when their features are used
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'claude_nb' has no attribute {name!r}")


def _register_accessor() -> None:
    """`df.claude` on every DataFrame (pandas is a dependency)."""
    try:
        from .kernel import accessor  # noqa: F401
    except ImportError:        # pandas missing: the rest of claude_nb still works
        pass


# now if pandas is loaded, else when it is: importing claude_nb alone never loads pandas
after_import("pandas", _register_accessor)


def load_ipython_extension(shell):
    """`%load_ext claude_nb`: registers %%claude and %claude."""
    from .kernel.magics import load_ipython_extension as load
    load(shell)


def unload_ipython_extension(shell):
    from .kernel.magics import unload_ipython_extension as unload
    unload(shell)
