"""Small HTTP helpers for tests against the live Jupyter server."""
import json

from tornado.httpclient import HTTPClientError


async def post(jp_fetch, path, body, headers=None, raw=None):
    """POST JSON (or raw bytes) and return the response, error statuses included."""
    try:
        return await jp_fetch(*path.split("/"), method="POST",
                              body=raw if raw is not None else json.dumps(body),
                              headers=headers or {})
    except HTTPClientError as err:
        return err.response


def parse_prometheus(text: str) -> dict:
    """{(sample name, frozenset(labels)): value}, via prometheus_client's own parser
    (a dependency of jupyter_server)."""
    from prometheus_client import parser
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out
