"""FallbackResolver: the default search order, logging, and the error that lists every location."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import (
    FallbackResolver,
    FileModelResolver,
    ModelInfo,
    PackageModelResolver,
    default_chain,
)
from site_packages import install
from synthetic_gguf import write_gguf


@pytest.fixture
def two_dirs(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("LLAMABIND_MODELS_PATH", os.pathsep.join([str(first), "", str(second)]))
    return first, second


def test_default_chain_order(two_dirs, tmp_path):
    chain = default_chain()
    kinds = [type(r).__name__ for r in chain]
    assert kinds == [
        "FileModelResolver",
        "FileModelResolver",
        "FileModelResolver",
        "PackageModelResolver",
        "CachedModelResolver",
        "_HubStep",
    ]
    assert [r.base_dir for r in chain[:3]] == [*two_dirs, tmp_path]  # env entries, then cwd


def test_models_path_then_current_directory(two_dirs, tmp_path):
    first, second = two_dirs
    write_gguf(second / "m.gguf")
    resolver = FallbackResolver()
    assert resolver.resolve("m") == second / "m.gguf"
    write_gguf(first / "m.gguf")
    assert resolver.resolve("m") == first / "m.gguf"  # earlier entries win
    write_gguf(tmp_path / "here.gguf")
    assert resolver.resolve("here") == tmp_path / "here.gguf"


def test_environment_is_read_at_each_lookup(tmp_path, monkeypatch):
    resolver = FallbackResolver()
    late = tmp_path / "late"
    late.mkdir()
    write_gguf(late / "x.gguf")
    monkeypatch.setenv("LLAMABIND_MODELS_PATH", str(late))
    assert resolver.resolve("x") == late / "x.gguf"


def test_cached_downloads_are_found_by_file_name(tmp_path):
    cached = tmp_path / "llamabind-cache" / "host.org" / "models" / "pulled.gguf"
    cached.parent.mkdir(parents=True)
    write_gguf(cached)
    assert FallbackResolver().resolve("pulled") == cached
    assert FallbackResolver().resolve("host.org/models/pulled") == cached


def test_hub_step_downloads_references(server, gguf_bytes, monkeypatch, tmp_path):
    data = gguf_bytes(file_type=7)
    server.add_repo("acme/tiny-GGUF", {"tiny-Q8_0.gguf": data})
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    path = FallbackResolver().resolve("acme/tiny-GGUF:Q8_0")
    assert path.read_bytes() == data
    assert path.is_relative_to(tmp_path / "hf-cache")
    assert FallbackResolver().resolve("tiny-Q8_0") == path  # now found in the cache, offline


def test_not_found_lists_every_location_and_logs_them(two_dirs, tmp_path, caplog):
    first, second = two_dirs
    caplog.set_level(logging.DEBUG, logger="llamabind.resolvers")
    with pytest.raises(ModelNotFoundError) as caught:
        FallbackResolver().resolve("missing-model")
    error = caught.value
    expected_start = [
        str(first / "missing-model.gguf"),
        str(first / "missing-model"),
        str(second / "missing-model.gguf"),
        str(second / "missing-model"),
        str(tmp_path / "missing-model.gguf"),
        str(tmp_path / "missing-model"),
        "installed Python distributions",
        str(tmp_path / "llamabind-cache"),
        str(tmp_path / "hf-cache"),
        "Hugging Face Hub",
    ]
    assert error.locations == expected_start
    assert len(error.reasons) == len(error.locations)
    message = str(error)
    for location in error.locations:
        assert location in message
        assert location in caplog.text
    assert "LLAMABIND_MODELS_PATH" in message and "hf://org/repo:QUANT" in message
    assert "not a Hugging Face reference" in message


def test_hub_step_without_huggingface_hub(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "huggingface_hub" else real_find_spec(name, *a),
    )
    with pytest.raises(ModelNotFoundError, match=r"huggingface-hub is not installed"):
        FallbackResolver().resolve("acme/repo:Q4_K_M")


def test_rejected_names_are_reported_and_search_goes_on(tmp_path):
    base = tmp_path / "base"
    base.mkdir()

    class Always:
        def resolve(self, name: str) -> Path:
            return write_gguf(tmp_path / "always.gguf")

        def list_models(self) -> Iterator[ModelInfo]:
            return iter(())

    resolver = FallbackResolver([FileModelResolver(base, label="base dir"), Always()])
    assert resolver.resolve("../escape") == tmp_path / "always.gguf"
    with pytest.raises(ModelNotFoundError, match=r"'\.\.' is not allowed"):
        FallbackResolver([FileModelResolver(base)]).resolve("../escape")


def test_custom_chain_with_packages(tmp_path):
    site = tmp_path / "site"
    install(
        site, "model-pkg", {"model_pkg/shipped.gguf": write_gguf(tmp_path / "s.gguf").read_bytes()}
    )
    resolver = FallbackResolver(
        [FileModelResolver(tmp_path / "empty"), PackageModelResolver(search_path=[site])]
    )
    assert resolver.resolve("shipped") == site / "model_pkg" / "shipped.gguf"
    names = [info.name for info in resolver.list_models()]
    assert names == ["shipped"]


def test_list_models_once_per_file(two_dirs, monkeypatch):
    first, _ = two_dirs
    write_gguf(first / "a.gguf")
    monkeypatch.setenv("LLAMABIND_MODELS_PATH", os.pathsep.join([str(first), str(first)]))
    monkeypatch.chdir(first)
    listed = [info for info in FallbackResolver().list_models() if info.name == "a"]
    assert len(listed) == 1 and listed[0].architecture == "llama"


def test_home_of_an_unknown_user_is_not_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError):
        FallbackResolver().resolve("~no-such-user-of-llamabind/model.gguf")


def test_a_path_too_long_for_the_file_system_is_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError, match="too long"):
        FallbackResolver().resolve(str(tmp_path / ("m" * 300 + ".gguf")))
