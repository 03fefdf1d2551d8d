"""Whether a server can be reached at all, asked once and quickly before a library that would
retry a dead connection for many seconds (``huggingface_hub`` backs off for ~23 s, printing
each retry) is called."""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0


def unreachable_reason(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why no TCP connection to the server of ``url`` (or to its proxy) can be opened.

    The proxy is the one ``HTTPS_PROXY`` / ``HTTP_PROXY`` (or ``ALL_PROXY``) names for the URL's
    scheme, unless ``NO_PROXY`` exempts the host. Only a connection is opened: nothing is sent.

    Args:
        url: An ``http(s)://`` URL.
        timeout_s: Seconds to wait for the connection.

    Returns:
        ``None`` when a connection opened, else what went wrong, in words.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return None
