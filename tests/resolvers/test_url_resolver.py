"""UrlModelResolver: URL to cache layout, base_url names, checksums, listing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from llamabind.errors import InvalidTextError, ModelNotFoundError
from llamabind.resolvers import (
    DownloadOptions,
    ModelDownloadError,
    UrlModelResolver,
    default_cache_dir,
)
from llamabind.resolvers.url import cache_path_for, split_checksum


def test_cache_layout(tmp_path):
    cache = tmp_path / "c"
    assert cache_path_for("https://host.org/a/b/m.gguf", cache) == cache / "host.org/a/b/m.gguf"
    assert cache_path_for("http://127.0.0.1:8080/m.gguf", cache) == cache / "127.0.0.1_8080/m.gguf"
    assert cache_path_for("https://h/m", cache) == cache / "h/m.gguf"
    with_query = cache_path_for("https://h/m.gguf?download=true", cache)
    assert with_query.parent == cache / "h" and with_query.name.startswith("m-")
    assert with_query != cache_path_for("https://h/m.gguf?download=false", cache)


@pytest.mark.parametrize(
    "url",
    [
        "https://h/../../etc/passwd",
        "https://h/%2e%2e/%2e%2e/x.gguf",
        "https://h/a/..%2f..%2fx.gguf",
        "https://h/%2fetc%2fpasswd",
        "https://h/a%5c..%5c..%5cx.gguf",
        "https://h/./../x",
    ],
)
def test_cache_path_never_leaves_the_cache(tmp_path, url):
    cache = tmp_path / "c"
    path = cache_path_for(url, cache)
    assert path.resolve().is_relative_to(cache.resolve())
    assert ".." not in path.relative_to(cache).parts


def test_cache_path_errors(tmp_path):
    with pytest.raises(ValueError, match="no host"):
        cache_path_for("https:///m.gguf", tmp_path)
    with pytest.raises(ValueError, match="names no file"):
        cache_path_for("https://h/", tmp_path)


def test_split_checksum():
    digest = "ab" * 32
    assert split_checksum(f"https://h/m.gguf#sha256={digest.upper()}") == (
        "https://h/m.gguf",
        digest,
    )
    assert split_checksum("https://h/m.gguf#top") == ("https://h/m.gguf#top", None)


def test_full_url_into_default_cache(server, gguf_bytes):
    data = gguf_bytes(1000)
    url = server.add_file("/models/m.gguf", data)
    path = UrlModelResolver().resolve(url)
    assert path.is_relative_to(default_cache_dir())  # LLAMABIND_CACHE_DIR, set by the fixture
    assert path.read_bytes() == data


def test_base_url_names(server, gguf_bytes, tmp_path):
    data = gguf_bytes()
    server.add_file("/repo/sub/tiny.gguf", data)
    resolver = UrlModelResolver(server.url("/repo/"), tmp_path / "c")
    assert resolver.url_for("sub/tiny") == server.url("/repo/sub/tiny.gguf")
    assert resolver.resolve("sub/tiny").read_bytes() == data
    assert resolver.resolve("sub/tiny.gguf") == resolver.cached_path("sub/tiny")
    for bad in ("../secret", "sub/../../x", "/etc/passwd", "\\\\server\\share", "ftp://x/y"):
        with pytest.raises(ValueError, match="relative path"):
            resolver.resolve(bad)
    assert all(g.path.startswith("/repo/") for g in server.requests)


def test_plain_name_without_base_url():
    with pytest.raises(ModelNotFoundError, match="base_url"):
        UrlModelResolver().resolve("tiny")


def test_checksums_from_fragment_mapping_and_argument(server, gguf_bytes, tmp_path):
    data = gguf_bytes()
    good, bad = hashlib.sha256(data).hexdigest(), "0" * 64
    url = server.add_file("/m.gguf", data)
    resolver = UrlModelResolver(cache_dir=tmp_path / "a", checksums={url: bad})
    with pytest.raises(ModelDownloadError, match="sha256 mismatch"):
        resolver.resolve(url)
    assert resolver.resolve(url, sha256=good).read_bytes() == data  # the argument wins
    fresh = UrlModelResolver(cache_dir=tmp_path / "b")
    with pytest.raises(ModelDownloadError, match="sha256 mismatch"):
        fresh.resolve(f"{url}#sha256={bad}")
    assert fresh.resolve(f"{url}#sha256={good}").read_bytes() == data


def test_list_models_shows_source_url(server, gguf_bytes, tmp_path):
    url = server.add_file("/x/m.gguf", gguf_bytes(chat_template="{{ x }}"))
    resolver = UrlModelResolver(cache_dir=tmp_path / "c", options=DownloadOptions(timeout_s=5))
    resolver.resolve(url)
    (info,) = list(resolver.list_models())
    assert info.uri == url and info.source == "url"
    assert info.name == "127.0.0.1_" + url.split(":")[2].split("/")[0] + "/x/m"
    assert info.has_chat_template and info.architecture == "llama"
    assert Path(info.path).read_bytes() == server.files["/x/m.gguf"]


def test_bad_base_url():
    with pytest.raises(ValueError, match="base_url"):
        UrlModelResolver("file:///tmp")


def test_urls_with_lone_surrogates_are_invalid_text(tmp_path):
    # found by fuzzing: quote() and str.encode() raised UnicodeEncodeError
    resolver = UrlModelResolver(base_url="https://example.org/models/", cache_dir=tmp_path)
    with pytest.raises(InvalidTextError, match="surrogates"):
        resolver.url_for("model-\udcff")
    with pytest.raises(InvalidTextError, match="surrogates"):
        UrlModelResolver(cache_dir=tmp_path).url_for("https://example.org/\ud800.gguf")
    with pytest.raises(InvalidTextError, match="surrogates"):
        cache_path_for("https://example.org/m.gguf?q=\udcff", tmp_path)
