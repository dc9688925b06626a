"""/v1/files: upload (multipart part `file`), list (both paging styles), metadata, content, delete."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from claude_nb.service import files
from claude_nb.protocol.errors import InvalidRequest

from .base import ApiHandler, api_method
from .paging import cursor_arguments, query_list

CONTENT_CHUNK = 1024 * 1024


class FilesHandler(ApiHandler):
    @api_method
    @authorized
    async def post(self):
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise InvalidRequest("Upload a file as multipart/form-data with the file in a part "
                                 f"named `file` (got Content-Type {content_type or 'none'!r}).")
        parts = self.request.files.get("file") or []
        if len(parts) != 1:
            raise InvalidRequest("file: Field required: exactly one multipart part named `file`"
                                 if not parts else "file: give one file per upload")
        part = parts[0]
        record = await asyncio.to_thread(
            files.upload, self.service.store, part.body, filename=part.filename,
            content_type=part.content_type,
            expires_in_seconds=self.get_body_argument("expires_in_seconds", None))
        self.write_json(files.file_json(record))

    @api_method
    @authorized
    async def get(self):
        self.write_json(files.list_page(
            self.service.store, **cursor_arguments(self), page=self.get_query_argument("page", None),
            ids=query_list(self, "ids") or None))


class FileHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self, file_id: str):
        self.write_json(files.file_json(self.service.store.get_file(file_id)))

    @api_method
    @authorized
    async def delete(self, file_id: str):
        self.service.store.delete_file(file_id)
        self.write_json(files.deleted_json(file_id))


class FileContentHandler(ApiHandler):
    @api_method
    @authorized
    async def get(self, file_id: str):
        record, handle = self.service.store.open_file(file_id)
        with handle:
            self.set_header("Content-Type", record.mime_type)
            self.set_header("Content-Length", str(record.size_bytes))
            # Served from the Jupyter origin: never let a browser render an upload inline.
            self.set_header("Content-Disposition", files.content_disposition(record.filename))
            self.set_header("X-Content-Type-Options", "nosniff")
            try:
                while True:
                    chunk = await asyncio.to_thread(handle.read, CONTENT_CHUNK)
                    if not chunk:
                        break
                    self.write(chunk)
                    await self.flush()
            except StreamClosedError:
                return
        self.finish(set_content_type=record.mime_type)
