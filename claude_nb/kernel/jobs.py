"""Message batches from DataFrames: `batch(df, prompt="... {column} ...")` -> a `BatchJob`.

One request per row, sent as a Message Batch (POST /v1/messages/batches on the Jupyter
server; with no server, the same batch runner works in-process). The job waits with a
progress bar and gives back one row per input, in input order.

The inputs are kept beside the batch (in the Jupyter data dir) so `batch_job(id)` can re-attach
after a kernel restart and still join the answers back to their rows.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .errors import ClaudeError
from .transports import default_transport
from .templating import fill_template, template_fields

ENDED = "ended"


def jobs_dir() -> Path:
    from jupyter_core.paths import jupyter_data_dir
    return Path(jupyter_data_dir()) / "claude_nb" / "jobs"


# -- building the requests ------------------------------------------------------------------
def _as_frame(data):
    import pandas as pd
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame(name=data.name if data.name is not None else "input")
    data = list(data)
    if all(isinstance(item, str) for item in data):
        return pd.DataFrame({"input": data})
    if all(isinstance(item, dict) for item in data):
        return pd.DataFrame(data)
    raise ClaudeError("batch() takes a DataFrame, a Series, a list of strings or a list of dicts.",
                      status=400, type="invalid_request_error")


def build_requests(frame, prompt: str | None, *, model: str, max_tokens: int,
                   system: str | None = None, **params) -> list[dict]:
    columns = [str(c) for c in frame.columns]
    if prompt is None:
        if "prompt" in columns:
            prompt = "{prompt}"
        elif len(columns) == 1:
            prompt = "{" + columns[0] + "}"
        else:
            raise ClaudeError("Give prompt='... {column} ...': it says which columns go into each "
                              f"request (columns: {', '.join(columns)}).", status=400,
                              type="invalid_request_error")
    elif not template_fields(prompt, columns):
        raise ClaudeError(f"The prompt names no column, so every request would be the same. Use "
                          f"{{column}} to put a row's values in (columns: {', '.join(columns)}).",
                          status=400, type="invalid_request_error")
    if len(frame) == 0:
        raise ClaudeError("The batch has no rows.", status=400, type="invalid_request_error")
    requests = []
    for position, row in enumerate(frame.to_dict("records")):
        body = {"model": model, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": fill_template(prompt, row)}]}
        if system:
            body["system"] = system
        body.update({k: v for k, v in params.items() if v is not None})
        requests.append({"custom_id": f"row-{position}", "params": body})
    return requests


# -- the job --------------------------------------------------------------------------------
class BatchJob:
    """A submitted batch. `.wait()`, then `.to_dataframe()`; `.cancel()`; `.id` to re-attach."""

    def __init__(self, backend, batch: dict, inputs=None, meta: dict | None = None):
        self._backend = backend
        self.batch = batch
        self.inputs = inputs
        self.meta = meta or {}
        self._results: list[dict] | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.batch["id"]

    @property
    def status(self) -> str:
        return self.batch.get("processing_status", "")

    @property
    def ended(self) -> bool:
        return self.status == ENDED

    @property
    def request_counts(self) -> dict:
        return dict(self.batch.get("request_counts") or {})

    @property
    def total(self) -> int:
        return sum(self.request_counts.values())

    def refresh(self) -> "BatchJob":
        self.batch = self._backend.retrieve(self.id)
        return self

    def cancel(self) -> "BatchJob":
        """Ask the batch to stop: requests not yet answered end as `canceled`."""
        self.batch = self._backend.cancel(self.id)
        return self

    def wait(self, timeout: float | None = None, *, poll_interval: float = 1.0,
             progress: bool = True) -> "BatchJob":
        """Block until the batch has ended, with a progress bar (a widget in a notebook)."""
        bar = ProgressBar(self) if progress else None
        started = time.monotonic()
        try:
            while True:
                self.refresh()
                done = self._backend.progress(self.id, self.batch)
                if bar:
                    bar.show(done, time.monotonic() - started)
                if self.ended:
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    raise TimeoutError(f"Batch {self.id} is still {self.status} after {timeout:g} s; "
                                       "it goes on: call .wait() again.")
                time.sleep(poll_interval)
        except KeyboardInterrupt:
            if bar:
                bar.close(f"Stopped waiting; batch {self.id} goes on. Re-attach with "
                          f"claude_nb.batch_job({self.id!r}).")
            raise
        if bar:
            bar.close(self.summary(time.monotonic() - started))
        return self

    def summary(self, elapsed: float | None = None) -> str:
        counts = self.request_counts
        parts = [f"{counts.get(k)} {k}" for k in ("succeeded", "errored", "canceled", "expired",
                                                   "processing") if counts.get(k)]
        took = f" in {elapsed:.0f} s" if elapsed is not None else ""
        return f"Batch {self.id} {self.status}{took}: " + (", ".join(parts) or "no requests")

    # -- results --------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """The raw results (`{"custom_id", "result"}`), in input order. The batch must have ended."""
        if self._results is None:
            if not self.ended:
                self.refresh()
            if not self.ended:
                raise ClaudeError(f"Batch {self.id} is still {self.status}: call .wait() first.",
                                  status=400, type="invalid_request_error")
            by_id = {r["custom_id"]: r for r in self._backend.results(self.batch)}
            order = self.meta.get("custom_ids") or sorted(by_id, key=_row_number)
            self._results = [by_id.get(cid, {"custom_id": cid, "result": {"type": "missing"}})
                             for cid in order]
        return self._results

    def to_dataframe(self, *, include_inputs: bool = True):
        """One row per input, in input order: the input columns, then text, status,
        input_tokens, output_tokens, cost_usd (estimated from list prices) and error. An output
        column whose name an input column already has gets the suffix `_claude`."""
        from .frames import results_frame
        inputs = self.inputs if include_inputs else None
        return results_frame(self.results(), inputs, model=self.meta.get("model"))

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<BatchJob {self.id} {self.status} {self.request_counts}>"


def _row_number(custom_id: str):
    head, _, tail = custom_id.rpartition("-")
    return (0, int(tail), "") if head == "row" and tail.isdigit() else (1, 0, custom_id)


class ProgressBar:
    """ipywidgets in a kernel; a text line elsewhere. Shows answered/total when the backend
    knows it, else the status and elapsed time (the API's counts move only at the end)."""

    def __init__(self, job: BatchJob):
        self.job = job
        self.widget = None
        self._last_text = None
        try:
            from IPython import get_ipython
            shell = get_ipython()
        except ImportError:
            shell = None
        if getattr(shell, "kernel", None) is not None:
            try:
                import ipywidgets as widgets
                from IPython.display import display
                self.bar = widgets.IntProgress(value=0, min=0, max=max(1, job.total),
                                               description="batch", bar_style="info")
                self.label = widgets.Label(value="")
                self.widget = widgets.HBox([self.bar, self.label])
                self.handle = display(self.widget, display_id=True)
            except ImportError:
                self.widget = None

    def _text(self, done: int | None, elapsed: float) -> str:
        total = self.job.total
        if self.job.ended:
            done = total - self.job.request_counts.get("processing", 0)
        if done is None:
            return f"{self.job.status} · {total} requests · {elapsed:.0f} s"
        return f"{done}/{total} answered · {elapsed:.0f} s"

    def show(self, done: int | None, elapsed: float) -> None:
        text = self._text(done, elapsed)
        if self.widget is not None:
            total = max(1, self.job.total)
            self.bar.max = total
            self.bar.value = total if self.job.ended else (done or 0)
            self.label.value = text
            return
        if done is not None or self.job.ended:
            total = max(1, self.job.total)
            filled = int(30 * (total if self.job.ended else done) / total)
            text = "[" + "#" * filled + "." * (30 - filled) + "] " + text
        if text != self._last_text:
            sys.stdout.write("\r" + text)
            sys.stdout.flush()
            self._last_text = text

    def close(self, message: str) -> None:
        """Replace the bar by a summary line (what the saved notebook keeps)."""
        if self.widget is not None:
            from .display import Rendered
            self.handle.update(Rendered(message, fmt="text"))
            self.widget.close()
            return
        if self._last_text is not None:
            sys.stdout.write("\n")
        print(message)


# -- the public functions -------------------------------------------------------------------
def _save_inputs(batch_id: str, frame, meta: dict) -> None:
    folder = jobs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{batch_id}.json").write_text(json.dumps(meta), encoding="utf-8")
        frame.to_pickle(folder / f"{batch_id}.pkl")
    except Exception as exc:     # unpicklable cells: the job still works, re-attach loses inputs
        print(f"claude_nb: could not keep the inputs of batch {batch_id} for re-attaching ({exc}).",
              file=sys.stderr)


def _load_inputs(batch_id: str):
    folder = jobs_dir()
    meta, frame = {}, None
    try:
        meta = json.loads((folder / f"{batch_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    pickle = folder / f"{batch_id}.pkl"
    if pickle.exists():
        import pandas as pd
        try:
            frame = pd.read_pickle(pickle)
        except Exception:
            frame = None
    return frame, meta


def batch(data, prompt: str | None = None, *, model: str | None = None, system: str | None = None,
          max_tokens: int | None = None, **params) -> BatchJob:
    """Send one request per row of `data` as a Message Batch; returns the `BatchJob`.

    data: a DataFrame (with `prompt="... {column} ..."`), a Series or list of strings (each is
    the prompt, or fills `{input}`), or a list of dicts. Extra keyword arguments go into every
    request (e.g. `stop_sequences`, `temperature`).
    """
    from .client import claude
    frame = _as_frame(data)
    model = model or claude.model
    requests = build_requests(frame, prompt, model=model,
                              max_tokens=claude.max_tokens if max_tokens is None else max_tokens,
                              system=system, **params)
    backend = default_transport().batches()
    created = backend.create(requests)
    meta = {"custom_ids": [r["custom_id"] for r in requests], "model": model, "prompt": prompt,
            "created": time.time()}
    _save_inputs(created["id"], frame, meta)
    return BatchJob(backend, created, frame, meta)


def batch_job(batch_id: str, inputs=None) -> BatchJob:
    """Re-attach to a batch by id (e.g. after a kernel restart). The inputs saved at submission
    are joined back in `to_dataframe()`; pass `inputs=` to give them yourself."""
    backend = default_transport().batches()
    current = backend.retrieve(batch_id)
    frame, meta = _load_inputs(batch_id)
    if inputs is not None:
        frame = _as_frame(inputs)
    return BatchJob(backend, current, frame, meta)
