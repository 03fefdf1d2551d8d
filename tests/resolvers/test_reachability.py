"""unreachable_reason: one quick connection, to the server or to the proxy the environment names."""

from __future__ import annotations

from llamabind.resolvers.reachability import unreachable_reason


def test_an_open_port_is_reachable(server):
    assert unreachable_reason(server.base_url) is None


def test_a_closed_port_says_why():
    reason = unreachable_reason("http://127.0.0.1:9/x")
    assert reason is not None and "127.0.0.1:9" in reason


def test_the_proxy_is_what_must_be_reachable(server, monkeypatch):
    for variable in ("https_proxy", "all_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert "127.0.0.1:9" in (unreachable_reason("https://example.invalid/") or "")
    monkeypatch.setenv("HTTPS_PROXY", server.base_url)
    assert unreachable_reason("https://example.invalid/") is None
