"""The Files API logic: upload checks, metadata shape, both list styles, use in a message."""
import io
import re

import pytest

from claude_nb.service import files
from claude_nb.protocol.errors import InvalidRequest, NotFound, RequestTooLarge
from claude_nb.service.store import DB_NAME, Store

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / DB_NAME)
    yield s
    s.close()


@pytest.mark.parametrize("name, kept", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("/abs/path/data.csv", "data.csv"),
    ("C:\\Users\\me\\notes.txt", "notes.txt"),
    ("ünïcödé ✓.md", "ünïcödé ✓.md"),
])
def test_file_names_keep_only_their_last_component(name, kept):
    assert files.clean_filename(name) == kept


@pytest.mark.parametrize("name", ["", "   ", "a\x00b.txt", "line\nbreak", "..", "dir/..", "x" * 501, None])
def test_bad_file_names_are_refused(name):
    with pytest.raises(InvalidRequest, match="^file: "):
        files.clean_filename(name)


@pytest.mark.parametrize("name, declared, expected", [
    ("a.bin", "image/png", "image/png"),
    ("a.pdf", "Application/PDF; charset=binary", "application/pdf"),
    ("a.pdf", "application/octet-stream", "application/pdf"),
    ("a.csv", None, "text/csv"),
    ("noext", "", "application/octet-stream"),
])
def test_mime_type_comes_from_the_part_else_the_name(name, declared, expected):
    assert files.mime_type_for(name, declared) == expected


def test_upload_stores_and_describes_the_file(store):
    record = files.upload(store, b"%PDF-1.4 ...", filename="dir/paper.pdf",
                          content_type="application/octet-stream")
    meta = files.file_json(record)
    assert meta == {"id": record.id, "type": "file", "filename": "paper.pdf",
                    "mime_type": "application/pdf", "size_bytes": 12,
                    "created_at": meta["created_at"], "downloadable": True, "expires_at": None}
    assert RFC3339_Z.match(meta["created_at"])
    assert store.read_file(record.id)[1] == b"%PDF-1.4 ..."


def test_upload_with_an_expiry(store):
    record = files.upload(store, b"x", filename="x.txt", expires_in_seconds="3600")
    meta = files.file_json(record)
    assert RFC3339_Z.match(meta["expires_at"]) and meta["expires_at"] > meta["created_at"]
    for bad in ("10", "abc", 10_000_000):
        with pytest.raises(InvalidRequest, match="expires_in_seconds"):
            files.upload(store, b"x", filename="x.txt", expires_in_seconds=bad)


def test_uploads_over_500_mb_are_413(store):
    with pytest.raises(RequestTooLarge, match="500 MB"):
        files.upload(store, io.BytesIO(b"tiny"), filename="huge.bin",
                     size=files.MAX_FILE_BYTES + 1)
    assert list(store.files_dir.iterdir()) == []


def upload_many(store, n):
    return [files.upload(store, b"%d" % i, filename=f"f{i}.txt").id for i in range(n)]


def test_list_pages_by_after_id_like_old_sdks(store):
    ids = upload_many(store, 5)[::-1]           # newest first
    seen, after = [], None
    while True:
        page = files.list_page(store, after_id=after, limit="2")
        seen += [f["id"] for f in page["data"]]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids


def test_list_pages_by_page_token_like_new_sdks(store):
    ids = upload_many(store, 5)[::-1]
    seen, token, pages = [], None, 0
    while True:
        page = files.list_page(store, page=token, limit=2)
        pages += 1
        seen += [f["id"] for f in page["data"]]
        token = page["next_page"]
        if not token:
            break
        assert token.startswith("page_")
    assert seen == ids and pages == 3


def test_list_before_id_goes_newer(store):
    ids = upload_many(store, 4)[::-1]
    page = files.list_page(store, before_id=ids[3], limit=2)
    assert [f["id"] for f in page["data"]] == ids[1:3] and page["has_more"]
    assert page["next_page"] is None


def test_list_by_ids_is_one_page(store):
    ids = upload_many(store, 3)
    page = files.list_page(store, ids=[ids[0], ids[2]])
    assert {f["id"] for f in page["data"]} == {ids[0], ids[2]}
    assert page["has_more"] is False and page["next_page"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"ids": ["file_a"], "page": "page_x"}, "ids: cannot be combined"),
    ({"ids": ["file_a"], "limit": 5}, "ids: cannot be combined"),
    ({"ids": ["file_a"] * 101}, "at most 100"),
    ({"page": "page_bm90LWFuLWlk"}, "page: "),
    ({"page": "garbage"}, "page: "),
    ({"limit": 0}, "limit: "),
    ({"limit": 1001}, "limit: "),
    ({"limit": "ten"}, "limit: "),
    ({"after_id": "file_a", "before_id": "file_b"}, "at most one"),
])
def test_bad_list_queries_are_400(store, kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        files.list_page(store, **kwargs)


def test_content_disposition_survives_any_name():
    header = files.content_disposition('we"ird\\näme.txt')
    assert header.startswith('attachment; filename="we_ird_n_me.txt"')
    assert "filename*=UTF-8''we%22ird%5Cn%C3%A4me.txt" in header


async def test_a_stored_file_reaches_the_model_as_a_document(bridge, upstream, tmp_path):
    store = Store(tmp_path / DB_NAME)
    store.attach(bridge)
    record = files.upload(store, "The secret word is PERIWINKLE.".encode(), filename="notes.txt")
    message = await bridge.create({"model": "sonnet", "max_tokens": 50, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": record.id}},
            {"type": "text", "text": "What is the secret word?"}]}]})
    assert message["content"][0]["text"] == "You said: What is the secret word?"
    sent = upstream.message_requests[-1]
    documents = [b for m in sent.messages if m["role"] == "user" and isinstance(m["content"], list)
                 for b in m["content"] if b.get("type") == "document"]
    assert documents and documents[0]["source"]["data"] == "The secret word is PERIWINKLE."
    assert documents[0]["title"] == "notes.txt"
    with pytest.raises(NotFound):
        await bridge.create({"model": "sonnet", "max_tokens": 50, "messages": [
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "file", "file_id": "file_01missing"}},
                {"type": "text", "text": "?"}]}]})
    store.close()
