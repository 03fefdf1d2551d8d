"""Managing downloaded models: pull, list with GGUF facts, cache size, remove."""

from __future__ import annotations

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import (
    DownloadOptions,
    ModelDownloadError,
    cache_info,
    list_local_models,
    pull_model,
    remove_model,
)
from llamabind.resolvers.cache import repo_cache_folder
from local_server import Fault

REPO = "acme/tiny-GGUF"


@pytest.fixture
def pulled(server, gguf_bytes, monkeypatch, tmp_path):
    """One model pulled over https into llamabind's cache and one from the (local) hub."""
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    url = server.add_file("/models/plain.gguf", gguf_bytes(5000, chat_template="{{ m }}"))
    server.add_repo(
        REPO,
        {
            "tiny-Q8_0.gguf": gguf_bytes(3000, file_type=7),
            "tiny-Q4_0.gguf": gguf_bytes(1000, file_type=2),
        },
    )
    events = []
    plain = pull_model(url, progress=events.append)
    hub = pull_model(f"hf://{REPO}:Q8_0", progress=events.append)
    return url, plain, hub, events


def test_pull_and_list(pulled, server, tmp_path):
    url, plain, hub, events = pulled
    assert plain.is_relative_to(tmp_path / "llamabind-cache")
    assert hub.is_relative_to(tmp_path / "hf-cache")
    assert [e.status for e in events].count("done") == 2
    infos = {info.source: info for info in list_local_models()}
    assert infos["url"].uri == url and infos["url"].has_chat_template
    assert infos["url"].name.endswith("/models/plain") and infos["url"].problem is None
    assert infos["hf"].name == f"{REPO}/tiny-Q8_0.gguf" and infos["hf"].quantization == "Q8_0"
    assert infos["hf"].uri == f"hf://{REPO}/tiny-Q8_0.gguf"
    n_requests = len(server.requests)
    assert pull_model(url) == plain  # already there: no new request
    assert len(server.requests) == n_requests


def test_cache_info(pulled, tmp_path):
    _, plain, hub, _ = pulled
    info = cache_info()
    assert info.path == tmp_path / "llamabind-cache" and info.hf_path == tmp_path / "hf-cache"
    assert info.n_models == 1 and info.n_hf_models == 1
    assert info.size_bytes >= plain.stat().st_size  # plus the sidecar and lock file
    assert info.hf_size_bytes == hub.stat().st_size
    assert info.n_bytes_partial == 0


def test_partial_downloads_are_counted_and_removed(server, gguf_bytes):
    url = server.add_file("/big.gguf", gguf_bytes(400_000))
    server.add_fault("/big.gguf", Fault(cut_after=150_000))
    server.add_fault("/big.gguf", Fault(status=403))
    with pytest.raises(ModelDownloadError):
        pull_model(url)
    assert cache_info().n_bytes_partial == 150_000
    assert remove_model(url) == []  # no model file, but the partial download goes
    assert cache_info().n_bytes_partial == 0


def test_remove_by_url_stem_and_path(pulled, server, tmp_path):
    url, plain, _, _ = pulled
    assert remove_model(url) == [plain]
    assert not plain.exists() and not plain.with_name(plain.name + ".json").exists()
    pull_model(url)
    assert remove_model("plain") == [plain]
    pull_model(url)
    assert remove_model(str(plain)) == [plain]
    with pytest.raises(ModelNotFoundError, match="not in llamabind's cache"):
        remove_model("plain")


def test_remove_from_hf_cache_keeps_shared_blobs(pulled, tmp_path):
    _, _, hub, _ = pulled
    blob = hub.resolve()
    folder = repo_cache_folder(tmp_path / "hf-cache", REPO)
    other_snapshot = folder / "snapshots" / ("2" * 40)
    other_snapshot.mkdir(parents=True)
    (other_snapshot / "tiny-Q8_0.gguf").symlink_to(blob)
    assert remove_model(f"hf://{REPO}@{hub.parent.name}/tiny-Q8_0.gguf") == [hub]
    assert not hub.exists() and blob.exists()  # still used by the other snapshot
    remove_model(str(other_snapshot / "tiny-Q8_0.gguf"))
    assert not blob.exists()
    assert [i for i in list_local_models() if i.source == "hf"] == []


def test_remove_hf_model_by_quantization(pulled):
    _, _, hub, _ = pulled
    assert remove_model(f"hf://{REPO}:Q8_0") == [hub]


def test_remove_split_model_removes_every_part(server, gguf_bytes, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.base_url)
    server.add_repo(
        REPO,
        {f"s-F16-0000{i}-of-00002.gguf": gguf_bytes(100 * i, split=(i - 1, 2)) for i in (1, 2)},
    )
    first = pull_model(f"hf://{REPO}:F16")
    second = first.with_name("s-F16-00002-of-00002.gguf")
    assert second.exists()
    assert remove_model(f"hf://{REPO}/s-F16-00001-of-00002.gguf") == [first, second]
    assert not second.exists()


def test_refuses_to_delete_outside_the_caches(tmp_path):
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="refusing to delete"):
        remove_model(str(outside))
    assert outside.exists()


def test_ambiguous_name(pulled, server, gguf_bytes):
    pull_model(server.add_file("/other/plain.gguf", gguf_bytes(10)))
    with pytest.raises(ValueError, match="several cached models"):
        remove_model("plain")


def test_joined_package_models_are_listed_as_packages(tmp_path):
    from synthetic_gguf import write_gguf

    joined = tmp_path / "llamabind-cache" / "packages" / "big.gguf"
    joined.parent.mkdir(parents=True)
    write_gguf(joined)
    (info,) = [info for info in list_local_models() if info.path == joined]
    assert (info.source, info.name) == ("package", "packages/big")
    assert cache_info().n_models == 1
    assert remove_model("big") == [joined]


def test_pull_argument_errors():
    with pytest.raises(ValueError, match="https:// or hf://"):
        pull_model("some-name")
    with pytest.raises(ValueError, match="sha256 applies"):
        pull_model("hf://org/repo:Q4_K_M", sha256="0" * 64)


@pytest.fixture
def victim(tmp_path):
    """A model file next to the caches, which remove_model must never delete."""
    path = tmp_path / "victim.gguf"
    path.write_bytes(b"GGUF precious")
    return path


def test_dot_dot_and_links_never_leave_the_caches(pulled, victim, tmp_path):
    _, plain, _, _ = pulled
    hf, ours = tmp_path / "hf-cache", tmp_path / "llamabind-cache"
    names = [
        f"{hf}/../victim.gguf",
        f"{ours}/../victim.gguf",
        f"{plain.parent}/../../../victim.gguf",
    ]
    (ours / "linked-out").symlink_to(tmp_path, target_is_directory=True)
    names.append(str(ours / "linked-out" / "victim.gguf"))
    for name in names:
        with pytest.raises(ValueError, match="refusing to delete"):
            remove_model(name)
    assert victim.read_bytes() == b"GGUF precious"


def test_a_link_in_the_cache_is_removed_not_its_target(victim, tmp_path):
    link = tmp_path / "llamabind-cache" / "host" / "link.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    assert remove_model(str(link)) == [link]
    assert not link.is_symlink() and victim.read_bytes() == b"GGUF precious"


def test_only_model_files_are_removed(pulled, tmp_path):
    _, plain, _, _ = pulled
    sidecar = plain.with_name(plain.name + ".json")
    for name in (str(sidecar), str(plain.parent), str(tmp_path / "hf-cache")):
        with pytest.raises(ValueError, match="refusing to delete"):
            remove_model(name)
    assert sidecar.exists() and plain.exists()


def test_remove_not_cached_hub_model_names_it_once():
    with pytest.raises(ModelNotFoundError) as caught:
        remove_model("hf://Qwen/Qwen3-4B-GGUF:Q4_K_M")
    message = str(caught.value)
    assert "model 'hf://Qwen/Qwen3-4B-GGUF:Q4_K_M' not found" in message
    assert "Q4_K_M:Q4_K_M" not in message
    assert isinstance(caught.value, FileNotFoundError)


def test_removing_a_mapped_model_leaves_the_mapping_readable(pulled):
    import mmap

    _, plain, _, _ = pulled
    data = plain.read_bytes()
    with plain.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert remove_model(str(plain)) == [plain]
        assert mapped[:] == data  # unlinked, never truncated: no SIGBUS for a loaded model


def test_list_includes_models_path_and_packages(tmp_path, monkeypatch):
    from llamabind.resolvers.package import shared_package_resolver
    from site_packages import install
    from synthetic_gguf import write_gguf

    models = tmp_path / "models"
    models.mkdir()
    write_gguf(models / "from-path.gguf")
    monkeypatch.setenv("LLAMABIND_MODELS_PATH", str(models))
    site = tmp_path / "site"
    install(site, "shipped-model", {"shipped_model/shipped.gguf": write_gguf(tmp_path / "s.gguf")})
    monkeypatch.syspath_prepend(str(site))
    shared_package_resolver().refresh()
    monkeypatch.setattr(shared_package_resolver(), "_models", None)  # re-indexed after the test
    write_gguf(tmp_path / "in-working-directory.gguf")
    infos = {info.name: info for info in list_local_models()}
    assert infos["from-path"].source == "file"
    assert infos["shipped"].source == "package" and infos["shipped"].uri.startswith("package:")
    assert "in-working-directory" not in infos


def test_pull_takes_download_limits(server, gguf_bytes):
    import threading

    url = server.add_file("/stalls.gguf", gguf_bytes(200_000))
    server.add_fault("/stalls.gguf", Fault(stall_after=70_000, times=2))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ModelDownloadError) as caught:
        pull_model(url, options=DownloadOptions(cancel=cancel))
    assert caught.value.reason == "cancelled"
    with pytest.raises(ModelDownloadError) as caught:
        pull_model(url, options=DownloadOptions(min_bytes_per_s=0, deadline_s=0.5))
    assert caught.value.reason == "timeout"
