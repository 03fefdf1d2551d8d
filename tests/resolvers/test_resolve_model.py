"""resolve_model: URI schemes, paths, and the three levels of configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import (
    FallbackResolver,
    FileModelResolver,
    HFModelResolver,
    ModelInfo,
    PackageModelResolver,
    UrlModelResolver,
    get_default_resolver,
    resolve_model,
    set_default_resolver,
)
from site_packages import install
from synthetic_gguf import write_gguf


@pytest.fixture(autouse=True)
def restore_default_resolver():
    yield
    set_default_resolver(None)


class Recording:
    """A resolver written against the protocol only."""

    def __init__(self, path: Path) -> None:
        self.path, self.names = path, []

    def resolve(self, name: str) -> Path:
        self.names.append(name)
        return self.path

    def list_models(self) -> Iterator[ModelInfo]:
        return iter(())


def test_paths(tmp_path):
    model = write_gguf(tmp_path / "m.gguf")
    assert resolve_model(str(model)) == model
    assert resolve_model(model) == model
    assert resolve_model("m.gguf") == model  # relative to the current directory
    assert resolve_model(model.as_uri()) == model
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model(tmp_path / "absent.gguf")
    assert caught.value.locations == [str(tmp_path / "absent.gguf")]
    for missing in (
        str(tmp_path / "absent.gguf"),
        "./absent.gguf",
        "../absent.gguf",
        (tmp_path / "absent.gguf").as_uri(),
    ):
        with pytest.raises(ModelNotFoundError, match="no such file"):
            resolve_model(missing)


def test_a_configured_resolver_decides_for_paths_and_uris(tmp_path):
    model = write_gguf(tmp_path / "m.gguf")
    other = Recording(write_gguf(tmp_path / "other.gguf"))
    assert resolve_model(str(model), other) == other.path
    assert resolve_model(model, other) == other.path
    assert resolve_model(model.as_uri(), other) == other.path
    assert resolve_model("https://127.0.0.1:9/m.gguf", other) == other.path
    assert other.names == [str(model), str(model), model.as_uri(), "https://127.0.0.1:9/m.gguf"]


def test_three_levels_of_configuration(tmp_path):
    global_model = write_gguf(tmp_path / "global.gguf")
    engine_model = write_gguf(tmp_path / "engine.gguf")
    assert isinstance(get_default_resolver(), FallbackResolver)
    with pytest.raises(ModelNotFoundError):
        resolve_model("some-name")
    global_resolver = Recording(global_model)
    set_default_resolver(global_resolver)
    assert get_default_resolver() is global_resolver
    assert resolve_model("some-name") == global_model
    assert resolve_model("some-name", Recording(engine_model)) == engine_model
    assert global_resolver.names == ["some-name"]
    set_default_resolver(None)
    assert isinstance(get_default_resolver(), FallbackResolver)


def test_set_default_resolver_checks_the_protocol():
    with pytest.raises(TypeError, match="resolve"):
        set_default_resolver(object())  # type: ignore[arg-type]


def test_resolver_returning_a_non_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a file"):
        resolve_model("x", Recording(tmp_path / "nothing.gguf"))


def test_http_uses_the_given_url_resolver(server, gguf_bytes, tmp_path):
    url = server.add_file("/m.gguf", gguf_bytes())
    assert resolve_model(url).is_relative_to(tmp_path / "llamabind-cache")
    own = UrlModelResolver(cache_dir=tmp_path / "engine-cache")
    assert resolve_model(url, own).is_relative_to(tmp_path / "engine-cache")
    chain = FallbackResolver(
        [FileModelResolver(tmp_path), UrlModelResolver(cache_dir=tmp_path / "c2")]
    )
    assert resolve_model(url, chain).is_relative_to(tmp_path / "c2")


def test_hf_uses_the_given_hf_resolver(server, gguf_bytes, tmp_path, monkeypatch):
    data = gguf_bytes(file_type=7)
    server.add_repo("acme/tiny-GGUF", {"tiny-Q8_0.gguf": data})
    own = HFModelResolver(cache_dir=tmp_path / "engine-hub", endpoint=server.base_url)
    path = resolve_model("hf://acme/tiny-GGUF:Q8_0", own)
    assert path.is_relative_to(tmp_path / "engine-hub") and path.read_bytes() == data
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    assert resolve_model("hf://acme/tiny-GGUF/tiny-Q8_0.gguf").is_relative_to(tmp_path / "hf-cache")


def test_package_scheme(tmp_path):
    site = tmp_path / "site"
    install(site, "pkg", {"pkg/p.gguf": write_gguf(tmp_path / "p.gguf").read_bytes()})
    assert (
        resolve_model("package:pkg", PackageModelResolver(search_path=[site]))
        == site / "pkg/p.gguf"
    )
    with pytest.raises(ModelNotFoundError, match="no distribution ships it"):
        resolve_model("package:pkg")  # the default package resolver looks at sys.path


@pytest.mark.parametrize("uri", ["ftp://host/m.gguf", "s3://bucket/m.gguf", "ollama://llama3"])
def test_unsupported_schemes(uri):
    with pytest.raises(ValueError, match="unsupported model URI scheme"):
        resolve_model(uri)
    with pytest.raises(ValueError, match="unsupported model URI scheme"):
        resolve_model(uri, Recording(Path("never-used.gguf")))  # before any resolver


def test_bad_arguments():
    with pytest.raises(TypeError):
        resolve_model(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        resolve_model("")
    with pytest.raises(ValueError, match="other hosts"):
        resolve_model("file://server/share/m.gguf")


def test_importing_resolvers_does_not_import_the_hub():
    import subprocess
    import sys

    code = "import sys, llamabind.resolvers; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
