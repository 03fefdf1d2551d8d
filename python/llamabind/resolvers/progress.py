"""Progress callbacks for downloads."""

from __future__ import annotations

from typing import Any

from llamabind.resolvers.base import DownloadProgress, ProgressCallback


def tqdm_progress(**tqdm_options: Any) -> ProgressCallback:
    """A progress callback that draws a ``tqdm`` bar per download.

    Args:
        **tqdm_options: Passed to ``tqdm`` (e.g. ``file=``, ``disable=``).

    Returns:
        A callback for :class:`DownloadOptions` / ``pull_model(progress=...)``.

    Raises:
        ImportError: ``tqdm`` is not installed.
    """
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("tqdm_progress needs tqdm: pip install tqdm") from None
    bars: dict[str, Any] = {}

    def callback(event: DownloadProgress) -> None:
        bar = bars.get(event.url)
        if bar is None:
            description = event.url.rsplit("/", 1)[-1]
            bar = bars[event.url] = tqdm(
                total=event.n_bytes_total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=description,
                **tqdm_options,
            )
        bar.total = event.n_bytes_total
        bar.update(event.n_bytes_done - bar.n)
        if event.status == "done":
            bar.close()
            del bars[event.url]

    return callback
