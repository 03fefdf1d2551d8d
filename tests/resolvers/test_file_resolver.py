"""FileModelResolver: names, the .gguf suffix, listing, and every way out of the base directory."""

from __future__ import annotations

import os

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import FileModelResolver
from synthetic_gguf import write_gguf


@pytest.fixture
def models(tmp_path):
    base = tmp_path / "models"
    (base / "qwen").mkdir(parents=True)
    write_gguf(base / "tiny.gguf")
    write_gguf(base / "qwen" / "small.Q8_0.gguf", file_type=7)
    write_gguf(base / "big-00001-of-00002.gguf", split=(0, 2))
    write_gguf(base / "big-00002-of-00002.gguf", split=(1, 2))
    (base / "notes.txt").write_text("not a model")
    return base


def test_resolves_names_with_and_without_suffix(models):
    resolver = FileModelResolver(models)
    assert resolver.resolve("tiny") == models / "tiny.gguf"
    assert resolver.resolve("tiny.gguf") == models / "tiny.gguf"
    assert resolver.resolve("qwen/small.Q8_0") == models / "qwen" / "small.Q8_0.gguf"
    assert resolver.resolve(str(models / "tiny.gguf")) == models / "tiny.gguf"  # absolute, inside


def test_missing_model_lists_paths_tried(models):
    with pytest.raises(ModelNotFoundError) as caught:
        FileModelResolver(models, label="my models").resolve("absent")
    error = caught.value
    assert error.locations == [str(models / "absent.gguf"), str(models / "absent")]
    assert "my models" in str(error) and "absent.gguf: no such file" in str(error)


def test_directory_is_not_a_model(models):
    (models / "folder.gguf").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a file"):
        FileModelResolver(models).resolve("folder")


@pytest.mark.parametrize(
    "name",
    ["../secret", "../models/tiny", "qwen/../../secret", "a/../../../etc/passwd", ".."],
)
def test_dot_dot_is_rejected(models, name):
    (models.parent / "secret.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"'\.\.' is not allowed"):
        FileModelResolver(models).resolve(name)


def test_absolute_path_outside_is_rejected_unless_allowed(models, tmp_path):
    outside = write_gguf(tmp_path / "outside.gguf")
    with pytest.raises(ValueError, match="path outside"):
        FileModelResolver(models).resolve(str(outside))
    assert FileModelResolver(models, allow_absolute=True).resolve(str(outside)) == outside


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_symlinks_out_of_the_directory(models, tmp_path):
    outside = write_gguf(tmp_path / "outside.gguf")
    (models / "escape.gguf").symlink_to(outside)
    (models / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    (models / "inside-link.gguf").symlink_to(models / "tiny.gguf")
    resolver = FileModelResolver(models)
    with pytest.raises(ValueError, match="symbolic link"):
        resolver.resolve("escape")
    with pytest.raises(ValueError, match="symbolic link"):
        resolver.resolve("linked-dir/outside")
    assert resolver.resolve("inside-link") == models / "inside-link.gguf"
    assert (
        FileModelResolver(models, allow_links_out=True).resolve("escape") == models / "escape.gguf"
    )
    names = [info.name for info in resolver.list_models()]
    assert "escape" not in names and "inside-link" in names


def test_bad_name_types():
    resolver = FileModelResolver(".")
    with pytest.raises(TypeError):
        resolver.resolve(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        resolver.resolve("  ")
    with pytest.raises(ValueError, match="NUL"):
        resolver.resolve("a\x00b")


def test_list_models(models):
    infos = {info.name: info for info in FileModelResolver(models).list_models()}
    assert sorted(infos) == ["big-00001-of-00002", "qwen/small.Q8_0", "tiny"]
    assert infos["qwen/small.Q8_0"].quantization == "Q8_0"
    assert infos["tiny"].architecture == "llama" and infos["tiny"].source == "file"
    big = infos["big-00001-of-00002"]
    assert big.n_split == 2
    assert big.size_bytes == sum(
        (models / f"big-0000{i}-of-00002.gguf").stat().st_size for i in (1, 2)
    )
    flat = [info.name for info in FileModelResolver(models, recursive=False).list_models()]
    assert "qwen/small.Q8_0" not in flat
    assert list(FileModelResolver(models / "absent").list_models()) == []


def test_home_of_an_unknown_user_is_not_found(models):
    # found by fuzzing: Path.expanduser raised RuntimeError for "~nosuchuser/..."
    name = "~no-such-user-of-llamabind/model.gguf"
    with pytest.raises(ModelNotFoundError):
        FileModelResolver(models).resolve(name)
    assert FileModelResolver(models).candidates(name)[0] == models / name


def test_a_name_too_long_for_the_file_system_is_not_found(models):
    # found by fuzzing: Path.is_file raised OSError (ENAMETOOLONG) out of resolve
    with pytest.raises(ModelNotFoundError) as caught:
        FileModelResolver(models).resolve("m" * 300)
    assert "too long" in caught.value.reasons[0].lower()
