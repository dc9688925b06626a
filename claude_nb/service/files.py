"""The Files API over the store: upload checks, metadata and list pages as the API shapes them.

Uploaded files are on the user's own machine, so unlike the hosted API they can be downloaded
again (`downloadable: true`).
"""
from __future__ import annotations

import base64
import binascii
import mimetypes
import time
import unicodedata
from typing import BinaryIO

from ..protocol.errors import InvalidRequest, RequestTooLarge
from ..protocol.paging import check_cursors, page_json, parse_limit
from ..protocol.times import rfc3339
from .store import FILE_ID, FileRecord, Store

MAX_FILE_BYTES = 500 * 1024 * 1024
MAX_FILENAME_CHARS = 500
MIN_EXPIRES_IN, MAX_EXPIRES_IN = 3600, 7_776_000
MAX_IDS = 100
# A part type that says "unknown": the file name usually says more.
_UNKNOWN_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


def clean_filename(name) -> str:
    """The name to keep as metadata: its last path component, no control characters. Names
    never reach the file system (bytes are stored under the id), but a name with a path or NUL
    byte in it is refused rather than guessed at."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("file: the upload has no file name (multipart part `file` needs "
                             "`filename=` in its Content-Disposition)")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidRequest("file: the file name contains control characters (NUL, newline, ...)")
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        raise InvalidRequest(f"file: {name!r} is not a file name")
    if len(base) > MAX_FILENAME_CHARS:
        raise InvalidRequest(f"file: the file name is longer than {MAX_FILENAME_CHARS} characters")
    return base


def mime_type_for(filename: str, declared: str | None) -> str:
    """The part's own Content-Type, unless it says nothing more than "bytes"; then a guess from
    the name; then application/octet-stream."""
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared not in _UNKNOWN_TYPES:
        if "/" not in declared or len(declared) > 255:
            raise InvalidRequest(f"file: {declared!r} is not a valid content type")
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def parse_expires_in(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest("expires_in_seconds: Input should be a valid integer") from None
    if not MIN_EXPIRES_IN <= seconds <= MAX_EXPIRES_IN:
        raise InvalidRequest(f"expires_in_seconds: Input should be between {MIN_EXPIRES_IN} and "
                             f"{MAX_EXPIRES_IN}")
    return seconds


def upload(store: Store, data: bytes | BinaryIO, *, filename: str, content_type: str | None = None,
           expires_in_seconds=None, size: int | None = None) -> FileRecord:
    """Check and store one upload; returns its record. 413 beyond 500 MB."""
    if size is None and isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
    if size is not None and size > MAX_FILE_BYTES:
        raise RequestTooLarge(f"file: {size} bytes is more than the {MAX_FILE_BYTES // (1024 * 1024)} MB "
                              "a file may have.")
    name = clean_filename(filename)
    mime = mime_type_for(name, content_type)
    expires_in = parse_expires_in(expires_in_seconds)
    expires_at = time.time() + expires_in if expires_in else None
    return store.add_file(data, filename=name, mime_type=mime, expires_at=expires_at,
                          downloadable=True)


def file_json(record: FileRecord) -> dict:
    return {"id": record.id, "type": "file", "filename": record.filename,
            "mime_type": record.mime_type, "size_bytes": record.size_bytes,
            "created_at": rfc3339(record.created_at), "downloadable": record.downloadable,
            "expires_at": rfc3339(record.expires_at)}


def deleted_json(file_id: str) -> dict:
    return {"id": file_id, "type": "file_deleted"}


# -- listing: both pagination styles in one answer ------------------------------------------
def page_token(last_id: str) -> str:
    return "page_" + base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _page_cursor(token: str) -> str:
    raw = token[5:] if token.startswith("page_") else None
    try:
        last = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode() if raw else ""
    except (binascii.Error, UnicodeDecodeError):
        last = ""
    if not FILE_ID.match(last):
        raise InvalidRequest(f"page: {token!r} is not a page token from a previous `next_page`")
    return last


def list_page(store: Store, *, after_id=None, before_id=None, limit=None, page=None,
              ids=None) -> dict:
    """GET /v1/files: `data, has_more, first_id, last_id` (after_id/before_id style) and
    `next_page` (page style) together, since each SDK generation reads only its own fields."""
    if ids:
        if not isinstance(ids, (list, tuple)):
            ids = [ids]
        if len(ids) > MAX_IDS:
            raise InvalidRequest(f"ids: at most {MAX_IDS} ids may be given")
        if page or limit not in (None, ""):
            raise InvalidRequest("ids: cannot be combined with `page` or `limit`")
        rows, more = store.list_files(ids=list(ids))
    else:
        check_cursors(after_id, before_id, page, page_style=True)
        if page:
            after_id = _page_cursor(page)
        rows, more = store.list_files(after_id=after_id or None, before_id=before_id or None,
                                      limit=parse_limit(limit))
    data = [file_json(r) for r in rows]
    return {**page_json(data, more),
            # Paging on by `page` goes older; a before_id page has no older `next_page`.
            "next_page": page_token(data[-1]["id"]) if more and data and not before_id else None}


def content_disposition(filename: str) -> str:
    """An attachment header that survives any file name (RFC 6266 / 5987)."""
    from urllib.parse import quote
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


__all__ = ["MAX_FILE_BYTES", "clean_filename", "mime_type_for", "upload", "file_json",
           "deleted_json", "list_page", "content_disposition"]
