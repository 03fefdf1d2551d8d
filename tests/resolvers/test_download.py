"""download_file against a real local HTTP server with injected faults."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from llamabind.errors import ModelNotFoundError
from llamabind.resolvers import DownloadOptions, ModelDownloadError
from llamabind.resolvers.download import download_file, read_sidecar
from local_server import Fault

SIZE = 600_000  # ~10 chunks of the server's 64 KiB
PYTHONPATH = str(Path(__file__).parent)


@pytest.fixture
def payload(gguf_bytes):
    return gguf_bytes(SIZE)


@pytest.fixture
def target(tmp_path):
    return tmp_path / "cache" / "model.gguf"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(target: Path) -> list[str]:
    """Files next to the target other than the lock file."""
    if not target.parent.exists():
        return []
    return sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock"))


def fast(**overrides) -> DownloadOptions:
    return DownloadOptions(**{"retry_delay_s": 0.01, "timeout_s": 5.0, **overrides})


def test_download_writes_file_sidecar_and_reports_progress(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    events = []
    assert download_file(url, target, options=fast(progress=events.append)) == target
    assert target.read_bytes() == payload
    assert leftovers(target) == ["model.gguf", "model.gguf.json"]
    sidecar = read_sidecar(target)
    assert sidecar["url"] == url and sidecar["sha256"] == sha256(payload)
    assert sidecar["n_bytes"] == len(payload)
    assert [e.status for e in events][-2:] == ["verifying", "done"]
    done = [e.n_bytes_done for e in events]
    assert done == sorted(done) and done[-1] == len(payload)
    assert events[-1].fraction == 1.0 and events[-1].n_bytes_total == len(payload)


def test_cached_copy_is_used_without_network(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    download_file(url, target, options=fast())
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert len(server.gets("/m.gguf")) == 1


def test_cut_connection_resumes_with_range(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(cut_after=200_000))
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert target.read_bytes() == payload
    gets = server.gets("/m.gguf")
    assert [g.range_start for g in gets] == [None, 200_000]
    assert gets[1].headers.get("If-Range")  # resumes only if the file did not change


def test_interrupted_download_leaves_only_a_part_file_then_resumes(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(cut_after=300_000))
    server.add_fault("/m.gguf", Fault(status=500, times=5))
    with pytest.raises(ModelDownloadError) as caught:
        download_file(url, target, options=fast(max_retries=0))
    assert caught.value.reason == "http"
    assert not target.exists()
    assert leftovers(target) == ["model.gguf.part", "model.gguf.part.json"]
    assert (target.parent / "model.gguf.part").stat().st_size == 300_000
    server.faults.clear()
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert target.read_bytes() == payload
    assert server.gets("/m.gguf")[-1].range_start == 300_000
    assert leftovers(target) == ["model.gguf", "model.gguf.json"]


def test_complete_part_file_is_finished_without_downloading_again(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.05))
    finishing = fast(progress=lambda event: event.status != "verifying")  # cancel at the end
    download_file(url, target, options=finishing)  # too late to cancel: the file is whole
    assert target.read_bytes() == payload
    part = target.with_name("model.gguf.part")
    target.rename(part)  # as if interrupted between the last byte and the rename
    meta = {"url": url, "n_bytes_total": len(payload)}
    (target.parent / "model.gguf.part.json").write_text(json.dumps(meta))
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert target.read_bytes() == payload
    last = server.gets("/m.gguf")[-1]
    assert last.range_start == len(payload)  # answered 416: nothing was sent again


def test_server_ignoring_range_restarts_cleanly(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(cut_after=100_000))
    server.add_fault("/m.gguf", Fault(ignore_range=True))
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert target.read_bytes() == payload


def test_changed_file_is_not_spliced(server, payload, gguf_bytes, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(cut_after=100_000))
    server.add_fault("/m.gguf", Fault(status=503, times=10))
    with pytest.raises(ModelDownloadError):
        download_file(url, target, options=fast(max_retries=0))
    newer = gguf_bytes(SIZE + 1000, arch="gemma3")
    server.faults.clear()
    server.files["/m.gguf"] = newer  # new ETag: If-Range makes the server send all of it
    download_file(url, target, options=fast())
    assert target.read_bytes() == newer


def test_wrong_checksum_leaves_nothing(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(body=payload[:-10] + b"corrupted!"))
    with pytest.raises(ModelDownloadError, match="sha256 mismatch") as caught:
        download_file(url, target, sha256=sha256(payload), options=fast())
    assert caught.value.reason == "checksum"
    assert caught.value.expected_sha256 == sha256(payload)
    assert leftovers(target) == []
    download_file(url, target, sha256=sha256(payload), options=fast())  # a retry succeeds
    assert target.read_bytes() == payload


def test_cached_copy_with_other_checksum_is_replaced(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert target.read_bytes() == payload


def test_404_is_model_not_found(server, target):
    url = server.url("/absent.gguf")
    with pytest.raises(ModelNotFoundError) as caught:
        download_file(url, target, options=fast())
    assert caught.value.locations == [url]
    assert "HTTP 404" in str(caught.value)
    assert leftovers(target) == []


def test_403_says_how_to_authenticate(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(status=403))
    with pytest.raises(ModelDownloadError, match="Authorization") as caught:
        download_file(url, target, options=fast())
    assert (caught.value.reason, caught.value.status) == ("http", 403)


def test_transient_503_is_retried(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(status=503, times=2))
    download_file(url, target, options=fast(max_retries=2))
    assert target.read_bytes() == payload
    assert len(server.gets("/m.gguf")) == 3


def test_timeout(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(delay_s=1.0, times=2))
    with pytest.raises(ModelDownloadError, match="timeout") as caught:
        download_file(url, target, options=fast(timeout_s=0.2, max_retries=1))
    assert caught.value.reason == "timeout"
    assert not target.exists()


def test_stall_mid_body_times_out_then_resumes(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=1.0))  # stalls after the first chunk
    download_file(url, target, sha256=sha256(payload), options=fast(timeout_s=0.3))
    assert target.read_bytes() == payload
    assert server.gets("/m.gguf")[-1].range_start == 64 * 1024


def test_slow_server_completes_with_progress(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.05))
    events = []
    download_file(url, target, options=fast(progress=events.append))
    assert target.read_bytes() == payload
    assert len([e for e in events if e.status == "downloading"]) >= 3


def test_cancel_from_progress_callback_keeps_part_for_resume(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.05))
    with pytest.raises(ModelDownloadError, match="cancelled") as caught:
        download_file(url, target, options=fast(progress=lambda e: e.n_bytes_done < 100_000))
    assert caught.value.reason == "cancelled"
    assert not target.exists()
    kept = (target.parent / "model.gguf.part").stat().st_size
    assert kept >= 100_000
    download_file(url, target, sha256=sha256(payload), options=fast())
    assert server.gets("/m.gguf")[-1].range_start == kept


def test_two_threads_download_once(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.02))
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(download_file, url, target, sha256=sha256(payload), options=fast())
            for _ in range(2)
        ]
        assert [future.result(timeout=30) for future in futures] == [target, target]
    assert target.read_bytes() == payload
    assert len(server.gets("/m.gguf")) == 1


def _spawn(script: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PYTHONPATH, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_download_once(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(chunk_delay_s=0.05))
    script = f"""
        from pathlib import Path
        from llamabind.resolvers.download import download_file
        print(download_file({url!r}, Path({str(target)!r}), sha256={sha256(payload)!r}))
    """
    processes = [_spawn(script) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
        assert out.strip() == str(target)
    assert target.read_bytes() == payload
    assert len(server.gets("/m.gguf")) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE/SIGXFSZ on Linux")
def test_disk_full_is_reported_and_leaves_no_complete_file(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    script = f"""
        import resource, signal
        from pathlib import Path
        from llamabind.resolvers import ModelDownloadError
        from llamabind.resolvers.download import download_file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        try:
            download_file({url!r}, Path({str(target)!r}))
        except ModelDownloadError as exc:
            print(exc.reason)
    """
    out, err = _spawn(script).communicate(timeout=60)
    assert out.strip() == "disk_full", err
    assert not target.exists()


def test_tls_error_and_private_ca(tls_server, tls_files, payload, target):
    url = tls_server.add_file("/m.gguf", payload)
    with pytest.raises(ModelDownloadError, match="SSL_CERT_FILE") as caught:
        download_file(url, target, options=fast())
    assert caught.value.reason == "tls"
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    download_file(url, target, options=fast(ssl_context=context))
    assert target.read_bytes() == payload


def test_redirect_to_another_host_drops_credentials(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    elsewhere = url.replace("127.0.0.1", "localhost") + "?signed=1"
    server.add_fault("/start.gguf", Fault(redirect_to=elsewhere))
    server.files["/start.gguf"] = payload
    headers = {"Authorization": "Bearer secret"}
    download_file(server.url("/start.gguf"), target, options=fast(headers=headers))
    assert target.read_bytes() == payload
    first, second = server.gets("/start.gguf")[0], server.gets("/m.gguf")[0]
    assert first.headers.get("Authorization") == "Bearer secret"
    assert "Authorization" not in second.headers


def test_bad_arguments(target):
    with pytest.raises(ValueError, match="http"):
        download_file("ftp://example.com/m.gguf", target)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download_file("http://127.0.0.1:9/m.gguf", target, sha256="abc")


def test_connection_refused(target):
    with pytest.raises(ModelDownloadError, match="connection failed") as caught:
        download_file("http://127.0.0.1:9/m.gguf", target, options=fast(max_retries=0))
    assert caught.value.reason == "connection"
    assert isinstance(caught.value, OSError)


def test_tqdm_progress_draws_a_bar(server, payload, target):
    import io

    from llamabind.resolvers import tqdm_progress

    url = server.add_file("/m.gguf", payload)
    out = io.StringIO()
    download_file(url, target, options=fast(progress=tqdm_progress(file=out)))
    assert "m.gguf" in out.getvalue() and "100%" in out.getvalue()


def test_a_cut_body_without_length_is_resumed_not_cached(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(no_length=True, cut_after=100_000, times=20))
    download_file(url, target, options=fast())
    assert target.read_bytes() == payload  # resumed up to the size the GGUF header implies
    assert server.gets("/m.gguf")[1].range_start == 100_000


def test_a_cut_body_without_length_or_resume_is_never_cached(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault(
        "/m.gguf", Fault(no_length=True, cut_after=100_000, ignore_range=True, times=20)
    )
    with pytest.raises(ModelDownloadError, match=f"100000 of the {len(payload)} bytes") as caught:
        download_file(url, target, options=fast(max_retries=2))
    assert caught.value.reason == "incomplete"
    assert not target.exists() and not (target.parent / "model.gguf.json").exists()


def test_a_cut_inside_the_header_resumes(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(no_length=True, cut_after=100))
    download_file(url, target, options=fast())
    assert target.read_bytes() == payload


def test_a_whole_gguf_without_length_is_accepted(server, payload, target):
    url = server.add_file("/m.gguf", payload)
    server.add_fault("/m.gguf", Fault(no_length=True))
    download_file(url, target, options=fast())
    assert target.read_bytes() == payload and read_sidecar(target)["n_bytes"] == len(payload)


def test_a_body_without_length_that_is_not_gguf_needs_a_checksum(server, target):
    page = b"<html>gateway says hello</html>"
    url = server.add_file("/m.gguf", page)
    server.add_fault("/m.gguf", Fault(no_length=True))
    with pytest.raises(ModelDownloadError, match="not a whole GGUF file") as caught:
        download_file(url, target, options=fast())
    assert caught.value.reason == "incomplete" and leftovers(target) == []
    server.add_fault("/m.gguf", Fault(no_length=True))
    download_file(url, target, sha256=sha256(page), options=fast())
    assert target.read_bytes() == page  # the checksum vouches for it


def test_replacing_a_cached_file_never_touches_a_mapped_copy(server, payload, gguf_bytes, target):
    import mmap

    url = server.add_file("/m.gguf", payload)
    download_file(url, target, options=fast())
    newer = gguf_bytes(SIZE + 1000)
    server.add_file("/m.gguf", newer)
    with target.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as old:
        inode = os.fstat(file.fileno()).st_ino
        download_file(url, target, sha256=sha256(newer), options=fast())
        assert old[:] == payload  # a new file was renamed over it, never truncated in place
        assert target.stat().st_ino != inode and target.read_bytes() == newer
