"""Token counting that never needs the network.

tiktoken downloads its encoding files on first use, which fails on air-gapped Jupyter hosts and
in CI. The `bpe-openai` package ships cl100k's rank file; we build the encoding from it (hash
checked). Claude's tokenizer is not cl100k, so counts are estimates; if the encoding cannot be
built at all we fall back to ~4 characters a token rather than failing the request.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import threading
from importlib import resources

_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# cl100k's published pre-tokenizer pattern (tiktoken_ext/openai_public.py).
_CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                   r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

_lock = threading.Lock()
_encoding = None
_encoding_failed = False

# Fixed costs, measured against the real API's counts for small requests.
PER_MESSAGE = 3
PER_REQUEST = 4
IMAGE_FALLBACK = 1600          # tokens for an image whose size we cannot read
PDF_PAGE = 1500                # tokens a PDF page costs, roughly (text + page image)


def _load_encoding():
    global _encoding, _encoding_failed
    if _encoding is not None or _encoding_failed:
        return _encoding
    with _lock:
        if _encoding is not None or _encoding_failed:
            return _encoding
        try:
            import tiktoken
            raw = resources.files("bpe_openai").joinpath("data/cl100k_base.tiktoken.gz").read_bytes()
            data = gzip.decompress(raw)
            if hashlib.sha256(data).hexdigest() != _CL100K_SHA256:
                raise ValueError("cl100k rank file does not match its published hash")
            ranks = {}
            for line in data.splitlines():
                if line:
                    token, rank = line.split()
                    ranks[base64.b64decode(token)] = int(rank)
            _encoding = tiktoken.Encoding(
                name="cl100k_base", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks,
                special_tokens={"<|endoftext|>": 100257, "<|fim_prefix|>": 100258,
                                "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
                                "<|endofprompt|>": 100276})
        except Exception:  # pragma: no cover - only without the data package
            _encoding_failed = True
    return _encoding


def count_text(text: str) -> int:
    if not text:
        return 0
    enc = _load_encoding()
    if enc is None:
        return max(1, len(text) // 4)
    return len(enc.encode(text, disallowed_special=()))


def _image_tokens(source: dict) -> int:
    """Anthropic's rule of thumb: width * height / 750, images scaled to fit 1568 px."""
    if source.get("type") != "base64":
        return IMAGE_FALLBACK
    try:
        head = base64.b64decode(source.get("data", "")[:65536] + "===", validate=False)
    except Exception:
        return IMAGE_FALLBACK
    size = _image_size(head)
    if not size:
        return IMAGE_FALLBACK
    w, h = size
    scale = min(1.0, 1568 / max(w, h))
    return max(1, int(w * scale * h * scale / 750))


def _image_size(head: bytes):
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            length = struct.unpack(">H", head[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", head[i + 5:i + 9])
                return w, h
            i += 2 + length
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        if head[12:16] == b"VP8X":
            w = 1 + int.from_bytes(head[24:27], "little")
            h = 1 + int.from_bytes(head[27:30], "little")
            return w, h
    return None


def _pdf_tokens(data_b64: str) -> int:
    try:
        raw = base64.b64decode(data_b64, validate=False)
    except Exception:
        return PDF_PAGE
    pages = raw.count(b"/Type /Page") - raw.count(b"/Type /Pages")
    pages = max(pages, raw.count(b"/Type/Page") - raw.count(b"/Type/Pages"), 1)
    return pages * PDF_PAGE


def count_block(block) -> int:
    if isinstance(block, str):
        return count_text(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return count_text(block.get("text", ""))
    if kind == "image":
        return _image_tokens(block.get("source") or {})
    if kind == "document":
        source = block.get("source") or {}
        extra = count_text(block.get("title") or "") + count_text(block.get("context") or "")
        stype = source.get("type")
        if stype == "text":
            return extra + count_text(source.get("data", ""))
        if stype == "base64":
            return extra + _pdf_tokens(source.get("data", ""))
        if stype == "content":
            content = source.get("content")
            if isinstance(content, str):
                return extra + count_text(content)
            return extra + sum(count_block(b) for b in content or [])
        return extra + PDF_PAGE
    if kind == "tool_use":
        return count_text(block.get("name", "")) + count_text(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return 4 + count_text(content)
        return 4 + sum(count_block(b) for b in content or [])
    if kind == "thinking":
        return count_text(block.get("thinking", ""))
    if kind == "redacted_thinking":
        return len(block.get("data", "")) // 4
    # Unknown-but-valid blocks (search_result, server tool results): count their JSON.
    return count_text(json.dumps(block, ensure_ascii=False))


def count_content(content) -> int:
    if isinstance(content, str):
        return count_text(content)
    return sum(count_block(b) for b in content or [])


def count_request_tokens(body: dict) -> int:
    """Estimated input tokens of a Messages request: system, every message and block, tools."""
    total = PER_REQUEST
    total += count_content(body.get("system") or "")
    for message in body.get("messages") or []:
        total += PER_MESSAGE + count_content(message.get("content"))
    for tool in body.get("tools") or []:
        total += count_text(tool.get("name", "")) + count_text(tool.get("description", "") or "")
        total += count_text(json.dumps(tool.get("input_schema", {}), ensure_ascii=False)) + 8
    return total
