"""Charts of the usage and cost reports in one call: `claude_nb.plot_usage()`,
`claude_nb.plot_cost()`. pandas draws them with matplotlib (installed by scripts/run.sh, or
`pip install "claude-nb[plot]"`)."""
from __future__ import annotations

from .errors import ClaudeError

TOKEN_COLUMNS = {"uncached_input_tokens": "input", "cache_read_input_tokens": "cache read",
                 "cache_creation_5m_input_tokens": "cache write (5m)",
                 "cache_creation_1h_input_tokens": "cache write (1h)",
                 "output_tokens": "output", "cached_output_tokens": "output from the result cache"}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ClaudeError("Charts need matplotlib: pip install matplotlib (scripts/run.sh installs "
                          "it; so does pip install \"claude-nb[plot]\").", status=400,
                          type="invalid_request_error") from None
    return plt


def _bucket_label(frame, width: str):
    fmt = {"1d": "%Y-%m-%d", "1h": "%m-%d %H:00", "1m": "%H:%M"}.get(width, "%Y-%m-%d %H:%M")
    return frame["starting_at"].dt.strftime(fmt)


def plot_usage(frame=None, *, by: str = "model", ax=None, **report_args):
    """Tokens per time bucket, stacked by kind of token, one bar per bucket; `frame` is a
    `claude_nb.usage_report()` (fetched with `report_args` when not given). Returns the axes."""
    plt = _pyplot()
    if frame is None:
        from .frames import usage_report
        frame = usage_report(**report_args)
    width = (frame.attrs.get("claude_nb") or {}).get("bucket_width", "1d")
    if frame.empty:
        ax = ax or plt.subplots(figsize=(8, 3))[1]
        ax.set_title("Token usage: no requests in this period")
        return ax
    columns = [c for c in TOKEN_COLUMNS if c in frame and frame[c].sum() > 0] or ["output_tokens"]
    table = frame.assign(bucket=_bucket_label(frame, width)).groupby("bucket")[columns].sum()
    table = table.rename(columns=TOKEN_COLUMNS)
    ax = table.plot.bar(stacked=True, ax=ax, figsize=None if ax else (9, 3.5), rot=0)
    models = ", ".join(sorted(map(str, frame[by].dropna().unique()))) if by in frame else ""
    ax.set_title("Token usage" + (f" ({models})" if models else ""))
    ax.set_xlabel("")
    ax.set_ylabel("tokens")
    if "cached_requests" in frame and frame["cached_requests"].sum():
        ax.annotate(f"{int(frame['cached_requests'].sum())} requests answered from the result "
                    "cache at no cost", xy=(0, 1.02), xycoords="axes fraction", fontsize=8)
    return ax


def plot_cost(frame=None, *, by: str = "model", ax=None, **report_args):
    """Cost in USD per day, stacked by `by` (model, token_type, description ...); `frame` is a
    `claude_nb.cost_report()` (fetched with `report_args` when not given). Returns the axes."""
    plt = _pyplot()
    if frame is None:
        from .frames import cost_report
        frame = cost_report(**report_args)
    if frame.empty:
        ax = ax or plt.subplots(figsize=(8, 3))[1]
        ax.set_title("Cost: no requests in this period")
        return ax
    labels = _bucket_label(frame, "1d")
    if by in frame:
        table = frame.assign(day=labels).pivot_table(index="day", columns=by, values="cost_usd",
                                                     aggfunc="sum", fill_value=0)
    else:
        table = frame.assign(day=labels).groupby("day")[["cost_usd"]].sum()
    ax = table.plot.bar(stacked=True, ax=ax, figsize=None if ax else (9, 3.5), rot=0)
    ax.set_title("Cost (USD, list prices where the CLI did not report its own)")
    ax.set_xlabel("")
    ax.set_ylabel("USD")
    return ax
