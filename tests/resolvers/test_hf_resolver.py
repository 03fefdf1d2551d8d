"""HFModelResolver through the real huggingface_hub, pointed at a local fake hub (no hub traffic)."""

from __future__ import annotations

import sys
import time

import pytest

pytest.importorskip("huggingface_hub")

from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import HFModelResolver, ModelDownloadError, parse_hf_reference
from llamabind.resolvers.hf import HFReference, looks_like_hf_reference, select_model_files

REPO = "acme/tiny-GGUF"
OLD_COMMIT = "1" * 40


@pytest.fixture
def hub(server, gguf_bytes):
    files = {
        "tiny-Q4_K_M.gguf": gguf_bytes(2000, file_type=15),
        "tiny-Q8_0.gguf": gguf_bytes(3000, file_type=7, chat_template="{{ m }}"),
        "mmproj-tiny-f16.gguf": gguf_bytes(100, file_type=1),
        "big/tiny-F16-00001-of-00002.gguf": gguf_bytes(500, file_type=1, split=(0, 2)),
        "big/tiny-F16-00002-of-00002.gguf": gguf_bytes(500, file_type=1, split=(1, 2)),
        "README.md": b"# tiny",
    }
    server.add_repo(
        REPO, {"tiny-Q8_0.gguf": gguf_bytes(10, file_type=7)}, commit=OLD_COMMIT, refs=()
    )
    server.commit = server.add_repo(REPO, files)
    server.add_repo("acme/gated", {"m.gguf": b"x"}, gated=True)
    return server


@pytest.fixture
def resolver(hub, tmp_path):
    return HFModelResolver(cache_dir=tmp_path / "hub", endpoint=hub.base_url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf://org/repo/f.gguf", HFReference("org/repo", None, "f.gguf")),
        ("org/repo:Q4_K_M", HFReference("org/repo", None, None, "Q4_K_M")),
        ("hf://org/repo@v1.0/sub/f.gguf", HFReference("org/repo", "v1.0", "sub/f.gguf")),
        ("hf://org/repo@refs%2Fpr%2F3:Q8_0", HFReference("org/repo", "refs/pr/3", None, "Q8_0")),
        ("hf://org/repo", HFReference("org/repo")),
    ],
)
def test_parse_references(text, expected):
    assert parse_hf_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hf://org",
        "hf://org/repo/../../x.gguf",
        "hf://org/repo//etc/passwd",
        "hf://org/repo/a\\..\\x.gguf",
        "hf://../repo/x.gguf",
        "hf://org/repo/./x.gguf",
        "plain",
    ],
)
def test_bad_references(text):
    with pytest.raises(ValueError):
        parse_hf_reference(text)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hf://org/repo", True),
        ("org/repo:Q4_K_M", True),
        ("org/repo/file.gguf", True),
        ("org/repo", True),
        ("sub/model.gguf", False),
        ("model", False),
        ("a\\b/c:Q4", False),
    ],
)
def test_looks_like_hf_reference(name, expected):
    assert looks_like_hf_reference(name) is expected


def test_select_model_files():
    files = [
        "a-Q4_K_M.gguf",
        "a-IQ4_K_M.gguf",
        "a-Q8_0.gguf",
        "mmproj-a-Q8_0.gguf",
        "x.md",
        "Q2_K/a-Q2_K-00001-of-00002.gguf",
        "Q2_K/a-Q2_K-00002-of-00002.gguf",
    ]
    assert select_model_files(files, "q8_0", "r") == ["a-Q8_0.gguf"]  # no projector
    assert select_model_files(files, None, "r") == ["a-Q4_K_M.gguf"]  # the default; not IQ4_K_M
    assert select_model_files(files, "Q2_K", "r") == [
        "Q2_K/a-Q2_K-00001-of-00002.gguf",
        "Q2_K/a-Q2_K-00002-of-00002.gguf",
    ]
    assert select_model_files(["only.gguf", "mmproj.gguf"], None, "r") == ["only.gguf"]
    with pytest.raises(ModelNotFoundError, match="a-Q8_0.gguf"):
        select_model_files(files, "Q5_K_S", "r")
    with pytest.raises(ValueError, match="several"):
        select_model_files(["a-Q4_0.gguf", "b-Q4_0.gguf"], "Q4_0", "r")


def test_resolve_by_quantization(hub, resolver, tmp_path):
    path = resolver.resolve(f"hf://{REPO}:Q8_0")
    assert path.read_bytes() == hub.repos[REPO][0].files["tiny-Q8_0.gguf"]
    assert path.is_relative_to(
        tmp_path / "hub" / "models--acme--tiny-GGUF" / "snapshots" / hub.commit
    )
    default = resolver.resolve(f"hf://{REPO}")
    assert default.name == "tiny-Q4_K_M.gguf"
    assert not any("mmproj" in r.path for r in hub.requests if "/resolve/" in r.path)


def test_resolve_relative_to_repo(hub, tmp_path):
    resolver = HFModelResolver(REPO, cache_dir=tmp_path / "hub", endpoint=hub.base_url)
    assert resolver.resolve("Q8_0").name == "tiny-Q8_0.gguf"
    assert resolver.resolve(":Q4_K_M").name == "tiny-Q4_K_M.gguf"
    assert resolver.resolve("tiny-Q8_0.gguf").name == "tiny-Q8_0.gguf"


def test_split_model_fetches_every_part(hub, resolver):
    first = resolver.resolve(f"hf://{REPO}:F16")
    assert first.name == "tiny-F16-00001-of-00002.gguf"
    second = first.with_name("tiny-F16-00002-of-00002.gguf")
    assert second.read_bytes() == hub.repos[REPO][0].files["big/tiny-F16-00002-of-00002.gguf"]
    again = resolver.resolve(f"hf://{REPO}/big/tiny-F16-00001-of-00002.gguf")  # by file name
    assert again == first


def test_revision_pinning(hub, resolver, tmp_path):
    old = resolver.resolve(f"hf://{REPO}@{OLD_COMMIT}/tiny-Q8_0.gguf")
    assert old.read_bytes() == hub.repos[REPO][1].files["tiny-Q8_0.gguf"]
    assert OLD_COMMIT in old.parts
    pinned = HFModelResolver(
        REPO, revision=OLD_COMMIT, cache_dir=tmp_path / "hub", endpoint=hub.base_url
    )
    assert pinned.resolve("Q8_0") == old
    assert resolver.resolve(f"hf://{REPO}/tiny-Q8_0.gguf") != old  # main is the newer commit


def test_offline_mode_uses_the_prepared_cache(hub, tmp_path):
    online = HFModelResolver(cache_dir=tmp_path / "hub", endpoint=hub.base_url)
    path = online.resolve(f"hf://{REPO}:Q8_0")
    n_requests = len(hub.requests)
    offline = HFModelResolver(
        cache_dir=tmp_path / "hub", endpoint="http://127.0.0.1:9", offline=True
    )
    assert offline.resolve(f"hf://{REPO}:Q8_0") == path
    assert offline.resolve(f"hf://{REPO}/tiny-Q8_0.gguf") == path
    with pytest.raises(ModelNotFoundError, match="Q4_K_M"):
        offline.resolve(f"hf://{REPO}:Q4_K_M")  # not cached
    with pytest.raises(ModelNotFoundError, match="offline"):
        offline.resolve(f"hf://{REPO}/tiny-Q4_K_M.gguf")
    with pytest.raises(ModelNotFoundError, match="offline"):
        offline.resolve("hf://acme/other:Q8_0")
    assert len(hub.requests) == n_requests
    (info,) = list(offline.list_models())
    assert info.name == f"{REPO}/tiny-Q8_0.gguf" and info.quantization == "Q8_0"


def test_offline_from_environment(hub, tmp_path, monkeypatch):
    HFModelResolver(cache_dir=tmp_path / "hub", endpoint=hub.base_url).resolve(f"hf://{REPO}:Q8_0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolver = HFModelResolver(cache_dir=tmp_path / "hub", endpoint="http://127.0.0.1:9")
    assert resolver.resolve(f"hf://{REPO}:Q8_0").name == "tiny-Q8_0.gguf"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("hf://acme/absent:Q8_0", "no such repository"),
        (f"hf://{REPO}/absent.gguf", "no such file"),
        (f"hf://{REPO}@nope/tiny-Q8_0.gguf", "no such revision"),
        (f"hf://{REPO}@nope:Q8_0", "no such revision"),
        (f"hf://{REPO}:Q3_K_S", "no GGUF file of quantization Q3_K_S"),
    ],
)
def test_not_found_errors(resolver, reference, message):
    with pytest.raises(ModelNotFoundError, match=message):
        resolver.resolve(reference)


def test_gated_repository(resolver):
    with pytest.raises(ModelDownloadError, match="gated") as caught:
        resolver.resolve("hf://acme/gated/m.gguf")
    assert caught.value.status == 403


UNREACHABLE = "http://127.0.0.1:9"  # a closed port


def test_unreachable_hub_fails_fast_and_quietly(tmp_path, capfd):
    resolver = HFModelResolver(cache_dir=tmp_path / "hub", endpoint=UNREACHABLE)
    start = time.monotonic()
    for reference in (
        f"hf://{REPO}:Q8_0",
        f"hf://{REPO}/tiny-Q8_0.gguf",
        f"hf://{REPO}@{OLD_COMMIT}/tiny-Q8_0.gguf",
    ):
        with pytest.raises(ModelDownloadError, match="could not be reached") as caught:
            resolver.resolve(reference)
        assert caught.value.reason == "connection"
        assert "HF_HUB_OFFLINE=1" in str(caught.value)
        assert "unset HF_HUB_OFFLINE" not in str(caught.value)  # it was not set
    assert time.monotonic() - start < 10  # huggingface_hub alone retries for ~23 s
    assert capfd.readouterr().err == ""


def test_the_default_resolver_fails_fast_on_an_unreachable_hub(capfd):
    from llamabind.resolvers import resolve_model

    with pytest.raises(ModelDownloadError, match="could not be reached"):
        resolve_model("hf://Qwen/Qwen3-4B-GGUF:Q4_K_M")  # HF_ENDPOINT is a closed port here
    assert capfd.readouterr().err == ""


def test_offline_hints_name_what_turned_offline_on(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match=r"offline=False") as caught:
        HFModelResolver(cache_dir=tmp_path, offline=True).resolve(f"hf://{REPO}/tiny-Q8_0.gguf")
    assert "HF_HUB_OFFLINE" not in str(caught.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="unset HF_HUB_OFFLINE"):
        HFModelResolver(cache_dir=tmp_path).resolve(f"hf://{REPO}@{OLD_COMMIT}/tiny-Q8_0.gguf")


def test_unreachable_hub_falls_back_to_cached_files(hub, tmp_path, capfd):
    path = HFModelResolver(cache_dir=tmp_path / "hub", endpoint=hub.base_url).resolve(
        f"hf://{REPO}:Q8_0"
    )
    resolver = HFModelResolver(cache_dir=tmp_path / "hub", endpoint=UNREACHABLE)
    assert resolver.resolve(f"hf://{REPO}:Q8_0") == path
    assert resolver.resolve(f"hf://{REPO}/tiny-Q8_0.gguf") == path
    listing = HFModelResolver(REPO, cache_dir=tmp_path / "hub", endpoint=UNREACHABLE)
    assert [info.path for info in listing.list_models()] == [path]
    assert capfd.readouterr().err == ""


def test_progress_callback(hub, tmp_path):
    events = []
    resolver = HFModelResolver(
        cache_dir=tmp_path / "hub", endpoint=hub.base_url, progress=events.append
    )
    path = resolver.resolve(f"hf://{REPO}:Q8_0")
    assert events[-1].status == "done" and events[-1].path == path
    assert events[-1].n_bytes_done == path.stat().st_size
    import inspect

    from huggingface_hub import hf_hub_download

    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # huggingface-hub >= 1.3
        assert any(e.status == "downloading" for e in events)
    assert all(e.url == f"hf://{REPO}/tiny-Q8_0.gguf" for e in events)


def test_list_repository(hub, resolver):
    resolver.resolve(f"hf://{REPO}:Q8_0")
    listing = HFModelResolver(REPO, cache_dir=resolver.cache_dir, endpoint=hub.base_url)
    infos = {info.name: info for info in listing.list_models()}
    assert sorted(infos) == [
        f"{REPO}/big/tiny-F16-00001-of-00002.gguf",
        f"{REPO}/tiny-Q4_K_M.gguf",
        f"{REPO}/tiny-Q8_0.gguf",
    ]
    cached = infos[f"{REPO}/tiny-Q8_0.gguf"]
    assert cached.path is not None and cached.has_chat_template and cached.quantization == "Q8_0"
    remote = infos[f"{REPO}/tiny-Q4_K_M.gguf"]
    assert remote.path is None and remote.size_bytes == len(
        hub.repos[REPO][0].files["tiny-Q4_K_M.gguf"]
    )
    assert infos[f"{REPO}/big/tiny-F16-00001-of-00002.gguf"].n_split == 2
    assert remote.uri == f"hf://{REPO}/tiny-Q4_K_M.gguf"


def test_without_huggingface_hub(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"pip install 'llamabind\[hf\]'"):
        HFModelResolver(cache_dir=tmp_path).resolve("hf://org/repo/f.gguf")


def test_bad_repo_argument():
    with pytest.raises(ValueError, match="org/name"):
        HFModelResolver("no-slash")


def test_cancel_from_progress_callback(hub, tmp_path):
    import inspect

    from huggingface_hub import hf_hub_download

    if "tqdm_class" not in inspect.signature(hf_hub_download).parameters:
        pytest.skip("byte-level progress needs huggingface-hub >= 1.3")
    cancelling = HFModelResolver(
        cache_dir=tmp_path / "hub", endpoint=hub.base_url, progress=lambda event: False
    )
    with pytest.raises(ModelDownloadError, match="cancelled") as caught:
        cancelling.resolve(f"hf://{REPO}:Q8_0")
    assert caught.value.reason == "cancelled"
    snapshots = tmp_path / "hub" / "models--acme--tiny-GGUF" / "snapshots"
    assert not any(p.is_file() for p in snapshots.rglob("*"))  # nothing that looks complete
    resolver = HFModelResolver(cache_dir=tmp_path / "hub", endpoint=hub.base_url)
    assert (
        resolver.resolve(f"hf://{REPO}:Q8_0").read_bytes()
        == (hub.repos[REPO][0].files["tiny-Q8_0.gguf"])
    )
