"""How much of llama.cpp's own logging reaches Python's ``logging`` (logger ``llamabind.native``)."""

from __future__ import annotations

import logging

from llamabind import _native

__all__ = ["NATIVE_LOGGER", "set_log_level"]

#: The logger llama.cpp's and ggml's log lines go to.
NATIVE_LOGGER = "llamabind.native"


def set_log_level(level: int | str) -> None:
    """Sets how much of llama.cpp's own logging reaches Python's ``logging``.

    Records at or above ``level`` go to the logger ``llamabind.native``; lower ones are dropped
    in C++ before they cost anything. The default is WARNING.

    Args:
        level: A ``logging`` level (``logging.INFO``) or its name (``"INFO"``).

    Raises:
        ValueError: ``level`` is not a logging level.
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(  # noqa: TRY004 - an unknown level name is a bad value
            f"unknown logging level: {level!r}"
        )
    _native.set_log_threshold(numeric)
    logging.getLogger(NATIVE_LOGGER).setLevel(numeric)
