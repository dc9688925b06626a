"""Credentials stay in the kernel: what no tool result may carry.

A variable, dict key, DataFrame column or environment variable whose *name* looks like a
credential (key, token, secret, password, ...) is withheld by name. Because a secret's value can
also turn up elsewhere (printed by a cell, pasted in a cell's source, inside another object's
repr), every tool result is scrubbed of the values of such variables and of such environment
variables before it leaves the kernel. Tools never read `os.environ` to answer the model; the
environment is consulted here only to know which strings to scrub.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

WITHHELD = "[withheld: credential]"
REDACTED = "[redacted]"

# Words of a name (snake_case, camelCase, digits split) that mark a secret, and substrings that
# do so even inside one word (`APIKEY`, `accesstoken`). Over-matching only withholds more.
_CREDENTIAL_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass",
                     "passphrase", "credential", "credentials", "creds", "auth", "authorization",
                     "cookie", "cookies", "bearer", "private", "session", "signature", "jwt",
                     "dsn", "pin", "otp", "salt"}
_CREDENTIAL_SUBSTRINGS = ("token", "secret", "passw", "credential", "apikey", "passphrase",
                          "privatekey", "accesskey")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# `api_key = "sk-..."`, `"password": 'x'`, `token: str = "..."` in cell sources.
_ASSIGNED_LITERAL = re.compile(
    r"""(?P<name>[\w.\[\]'"-]*(?:key|token|secret|passw|pwd|passphrase|credential|auth|cookie|bearer)"""
    r"""[\w'"\]]*\s*(?::\s*[\w\[\], |]+)?\s*[=:]\s*[rbuf]*)(?P<q>['"]{1,3})(?P<value>.+?)(?P=q)""",
    re.IGNORECASE)

_MIN_SECRET = 6          # shorter values are too common to scrub (e.g. "1", "true")


def looks_like_credential(name) -> bool:
    """True for names such as `api_key`, `GITHUB_TOKEN`, `dbPassword`, `auth_headers`, `APIKEY`;
    false for `keys`, `monkey`, `author`."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    if any(s in lowered for s in _CREDENTIAL_SUBSTRINGS):
        return True
    return any(w.lower() in _CREDENTIAL_WORDS for w in _WORD.findall(name))


def _secret_strings(value, depth: int = 0) -> Iterable[str]:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return
    if isinstance(value, str):
        if len(value) >= _MIN_SECRET:
            yield value
    elif isinstance(value, Mapping) and depth < 3:
        for v in list(value.values())[:200]:
            yield from _secret_strings(v, depth + 1)
    elif isinstance(value, (list, tuple, set)) and depth < 3:
        for v in list(value)[:200]:
            yield from _secret_strings(v, depth + 1)
    else:       # e.g. pydantic SecretStr, requests auth objects: their str() may be the secret
        for attr in ("get_secret_value",):
            getter = getattr(value, attr, None)
            if callable(getter):
                try:
                    yield from _secret_strings(getter(), depth + 1)
                except Exception:
                    pass


def _nested_secrets(value, depth: int = 0) -> Iterable[str]:
    """Values kept under credential-like keys inside containers (`config["api_key"]`)."""
    if depth > 3:
        return
    if isinstance(value, Mapping):
        for k, v in list(value.items())[:500]:
            if looks_like_credential(k):
                yield from _secret_strings(v)
            else:
                yield from _nested_secrets(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in list(value)[:200]:
            yield from _nested_secrets(v, depth + 1)


class Scrubber:
    """Replaces every known secret value in text by `[redacted]`.

    Built from a namespace (the user's variables) and the process environment; rebuilt for each
    tool call so a secret assigned a moment ago is covered."""

    def __init__(self, namespace: Mapping | None = None, environ: Mapping | None = None):
        secrets: set[str] = set()
        for name, value in list((namespace or {}).items()):
            if looks_like_credential(name):
                secrets.update(_secret_strings(value))
            else:
                secrets.update(_nested_secrets(value))
        env = os.environ if environ is None else environ
        for name, value in list(env.items()):
            if looks_like_credential(name):
                secrets.update(_secret_strings(value))
        # longest first, so a secret containing another is replaced whole
        self.secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return scrub_assignments(text)


def scrub_assignments(source: str) -> str:
    """Cell source with string literals assigned to credential-like names redacted."""
    return _ASSIGNED_LITERAL.sub(lambda m: m.group("name") + m.group("q") + REDACTED + m.group("q"),
                                 source)


def redacted(value, depth: int = 0):
    """A copy of plain containers with credential-keyed values withheld (for reprs)."""
    if depth > 4:
        return value
    if isinstance(value, os._Environ):
        return {k: WITHHELD for k in value}
    if isinstance(value, dict):
        return {k: (WITHHELD if looks_like_credential(k) else redacted(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, depth + 1) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(redacted(v, depth + 1) for v in value)
    return value
