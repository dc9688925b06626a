"""`df.claude`: Claude over a DataFrame's rows, registered when `claude_nb` is imported.

    df.claude.map("Summarise: {review}")                      -> Series of answers
    df.claude.extract("From: {review}", {"stars": int, "topic": ["price", "quality"]})
                                                              -> DataFrame, one typed column per field
    df.claude.classify("Sentiment of: {review}", ["positive", "negative", "mixed"])
                                                              -> categorical Series
    df.claude.filter("The review {review} complains about delivery")
                                                              -> the rows for which that holds
    df.claude.estimate("Summarise: {review}")                 -> tokens, cost and time, nothing sent

Each call is one durable Message Batch (claude_nb.batch underneath): progress is shown, rows
come back in input order, a row that fails gets its message in an `error` column (or in
`.attrs["claude_nb"]["errors"]` for a Series) instead of an exception that loses the rest, and
calling the same thing again after a kernel restart re-attaches to the batch still running.
Answers go through the result cache (`cache=False` bypasses it): a re-run of a notebook bills
nothing twice, and rows answered from it say so (`cached`).

Every method takes `max_cost_usd=`: when the estimate is above it nothing is sent and a
`CostLimitExceeded` error names both numbers.
"""
from __future__ import annotations

import hashlib
import json
import sys

import pandas as pd

from . import caching, jobs
from .client import claude
from .errors import ClaudeError
from .estimate import CostLimitExceeded, Estimate, estimate_requests, plan_quota
from .schema import OutputSchema, output_schema, typed_columns

CLASSIFY_HINT = "\n\nAnswer with exactly one of these labels: {labels}."
FILTER_HINT = ("\n\nDecide whether the statement above is true. Answer `true` if it holds, "
               "`false` if it does not.")
POLL_SECONDS = 0.5


class _Call:
    """One accessor call: its requests, how to read an answer, and what it returns."""

    def __init__(self, kind: str, requests: list[dict], model: str, *,
                 spec: OutputSchema | None = None, labels=None):
        self.kind, self.requests, self.model = kind, requests, model
        self.spec, self.labels = spec, labels

    def fingerprint(self, cache: bool) -> str:
        raw = json.dumps([self.kind, cache, self.requests], sort_keys=True, default=str)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


@pd.api.extensions.register_dataframe_accessor("claude")
class ClaudeAccessor:
    """Claude over this DataFrame's rows; see the module doc."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame

    # -- the methods ----------------------------------------------------------------------
    def map(self, prompt: str, *, name: str = "claude", details: bool = False, **opts):
        """One answer per row: `prompt` is a template over the row (`{column}`). Returns a
        string Series (failed rows <NA>, their errors in `.attrs["claude_nb"]["errors"]`), or
        with `details=True` the whole frame (text, status, cached, tokens, cost_usd, error)."""
        call = self._build("map", prompt, opts)
        rows = self._run(call, opts)
        if details:
            return rows
        out = rows["text"].astype("string").rename(name)
        return self._with_attrs(out, rows)

    def extract(self, prompt: str, schema, **opts) -> pd.DataFrame:
        """One typed column per schema field, answered through structured output, plus
        `cached` and `error`. schema: a dict of field -> str/int/float/bool or a list of
        allowed values (a categorical), a JSON schema, or a pydantic model / TypedDict."""
        spec = output_schema(schema)
        call = self._build("extract", prompt, opts, spec=spec)
        rows = self._run(call, opts)
        values = [_parse(text) for text in rows["text"]]
        out = typed_columns(values, spec, self._frame.index)
        out["cached"] = rows["cached"].to_numpy()
        out["error"] = _errors(rows, values).to_numpy()
        return self._with_attrs(out, rows)

    def classify(self, prompt: str, labels, *, name: str = "label", **opts) -> pd.Series:
        """One of `labels` per row, as a categorical Series over exactly those labels."""
        labels = list(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ClaudeError("classify() needs at least two distinct labels.", status=400,
                              type="invalid_request_error")
        spec = output_schema({"label": labels})
        call = self._build("classify", _classify_prompt(prompt, labels), opts, spec=spec,
                           labels=labels)
        rows = self._run(call, opts)
        values = [_parse(text) for text in rows["text"]]
        column = typed_columns(values, spec, self._frame.index)["label"].rename(name)
        return self._with_attrs(column, rows, _errors(rows, values))

    def filter(self, condition: str, **opts) -> pd.DataFrame:
        """The rows for which Claude answers that `condition` (a template over the row) holds,
        columns unchanged. Rows whose request failed are left out, with a warning."""
        spec = output_schema({"answer": bool})
        call = self._build("filter", condition + FILTER_HINT, opts, spec=spec)
        rows = self._run(call, opts)
        values = [_parse(text) for text in rows["text"]]
        keep = [bool(v and v.get("answer") is True) for v in values]
        out = self._frame[pd.Series(keep, index=self._frame.index).to_numpy()]
        return self._with_attrs(out.copy(), rows, _errors(rows, values))

    def estimate(self, prompt: str, *, schema=None, labels=None, method: str | None = None,
                 **opts) -> Estimate:
        """Tokens, cost, time and plan quota of a call, before anything is sent: the same
        arguments as the call (`schema=` for extract, `labels=` for classify,
        `method="filter"` for filter)."""
        method = method or ("extract" if schema is not None else
                            "classify" if labels is not None else "map")
        if method not in ("map", "extract", "classify", "filter"):
            raise ClaudeError(f"method must be map, extract, classify or filter, not {method!r}",
                              status=400, type="invalid_request_error")
        opts.pop("max_cost_usd", None)
        spec = None
        if method == "extract":
            spec = output_schema(schema)
        elif method == "classify":
            labels = list(labels or [])
            spec = output_schema({"label": labels})
            prompt = _classify_prompt(prompt, labels)
        elif method == "filter":
            spec = output_schema({"answer": bool})
            prompt = prompt + FILTER_HINT
        call = self._build(method, prompt, opts, spec=spec, labels=labels)
        return self._estimate(call, opts.get("cache", True))

    # -- the machinery --------------------------------------------------------------------
    def _build(self, kind: str, prompt: str, opts: dict, *, spec: OutputSchema | None = None,
               labels=None) -> _Call:
        params = {k: v for k, v in opts.items()
                  if k not in ("cache", "max_cost_usd", "progress", "wait")}
        model = params.pop("model", None) or claude.model
        max_tokens = params.pop("max_tokens", None)
        if spec is not None:
            config = dict(params.pop("output_config", None) or {})
            config["format"] = spec.output_format()
            params["output_config"] = config
        requests = jobs.build_requests(self._frame, prompt, model=model,
                                       max_tokens=claude.max_tokens if max_tokens is None
                                       else max_tokens, **params)
        return _Call(kind, requests, model, spec=spec, labels=labels)

    def _estimate(self, call: _Call, cache: bool) -> Estimate:
        bodies = [r["params"] for r in call.requests]
        if cache:
            cached, concurrency = caching.lookup(bodies)
        else:
            _, concurrency = caching.lookup(bodies[:1])
            cached = [False] * len(bodies)
        return estimate_requests(call.requests, kind=call.kind, cached=cached,
                                 concurrency=concurrency,
                                 schema=call.spec.json_schema if call.spec else None,
                                 labels=call.labels, quota=plan_quota())

    def _run(self, call: _Call, opts: dict) -> pd.DataFrame:
        cache = bool(opts.get("cache", True))
        limit = opts.get("max_cost_usd")
        if limit is not None:
            estimate = self._estimate(call, cache)
            if estimate.cost_usd > float(limit):
                raise CostLimitExceeded(estimate, float(limit))
        job = self._job(call, cache)
        progress = bool(opts.get("progress", True))
        job.wait(progress=progress, poll_interval=POLL_SECONDS)
        rows = job.to_dataframe(include_inputs=False)
        rows.index = self._frame.index
        rows.attrs["claude_nb"] = {"batch_id": job.id}
        if progress:
            _summary(call, rows)
        return rows

    def _job(self, call: _Call, cache: bool) -> jobs.BatchJob:
        """The batch of this exact call if one is still running (a kernel restart, an
        interrupted wait), else a new one."""
        marker = jobs.jobs_dir() / "calls" / f"{call.fingerprint(cache)}.json"
        try:
            batch_id = json.loads(marker.read_text(encoding="utf-8"))["batch_id"]
        except (OSError, ValueError, KeyError):
            batch_id = None
        if batch_id:
            try:
                job = jobs.batch_job(batch_id, inputs=self._frame)
            except ClaudeError:
                job = None
            if job is not None and not job.ended:
                print(f"claude_nb: re-attached to batch {batch_id}, still running.",
                      file=sys.stderr)
                return job
        job = jobs.submit(call.requests, self._frame, model=call.model, prompt=None, cache=cache,
                          extra_meta={"kind": call.kind})
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"batch_id": job.id}), encoding="utf-8")
        except OSError:
            pass            # re-attaching is a convenience; the call goes on
        return job

    @staticmethod
    def _with_attrs(out, rows: pd.DataFrame, errors: pd.Series | None = None):
        errors = rows["error"] if errors is None else errors
        failed = errors.dropna()
        out.attrs["claude_nb"] = {**rows.attrs.get("claude_nb", {}),
                                  "cached": int(rows["cached"].sum()),
                                  "cost_usd": float(rows["cost_usd"].fillna(0).sum()),
                                  "errors": failed.to_dict()}
        if len(failed):
            # printed, not warnings.warn: a warning shows once per line, a failure every time
            print(f"claude_nb: {len(failed)} of {len(rows)} rows failed (first: "
                  f"{failed.iloc[0]}); the messages are in .attrs['claude_nb']['errors'] (and "
                  "the `error` column of extract()).", file=sys.stderr)
        return out


def _classify_prompt(prompt: str, labels) -> str:
    # the hint joins the row template: braces in a label are literal there
    listed = ", ".join(map(str, labels)).replace("{", "{{").replace("}", "}}")
    return prompt + CLASSIFY_HINT.format(labels=listed)


def _parse(text) -> dict | None:
    """A structured answer's JSON object; None for a failed row."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _errors(rows: pd.DataFrame, values: list) -> pd.Series:
    """The row's error, or one saying the answer was not the schema's JSON (should not happen:
    structured output is checked by the CLI)."""
    out = rows["error"].astype("object").copy()
    for position, (status, value) in enumerate(zip(rows["status"], values)):
        if status == "succeeded" and value is None:
            out.iloc[position] = "api_error: the answer was not a JSON object of the schema"
    return out.where(out.notna(), None)


def _summary(call: _Call, rows: pd.DataFrame) -> None:
    cached = int(rows["cached"].sum())
    failed = int(rows["error"].notna().sum())
    cost = float(rows["cost_usd"].fillna(0).sum())
    parts = [f"{len(rows)} rows", f"{cached} from the cache (billed nothing)"]
    if failed:
        parts.append(f"{failed} failed (see the error column)")
    parts.append(f"${cost:.4f} estimated at list prices")
    print(f"claude_nb {call.kind}: " + ", ".join(parts))
