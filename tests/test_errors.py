"""llamabind.errors: the hierarchy and the text check at the native boundary."""

from __future__ import annotations

import pytest
from llamabind.errors import InvalidTextError, LlamaError, check_text


def test_invalid_text_is_a_llama_error_and_a_value_error():
    error = InvalidTextError("bad", field="messages[0].content")
    assert isinstance(error, LlamaError) and isinstance(error, ValueError)
    assert error.field == "messages[0].content"


def test_check_text_names_where_the_lone_surrogate_is():
    check_text({"a": ["fine", ("also", {"ok": 1})], "b": None}, "request")
    cases = [
        ("x\ud800", "prompt", "prompt"),
        ([{"role": "user", "content": "\udcff"}], "messages", "messages[0].content"),
        ({"a": {"list": ["ok", {"deep": "\ud800"}]}}, "kw", "kw.a.list[1].deep"),
        ({"\udcff": "value"}, "kw", "kw key"),
        ({"not an identifier": "\ud800"}, "kw", "kw['not an identifier']"),
    ]
    for value, field, where in cases:
        with pytest.raises(InvalidTextError, match="surrogates") as caught:
            check_text(value, field)
        assert caught.value.field == where
        str(caught.value).encode()  # the message itself is valid text


def test_check_text_walks_a_container_that_holds_itself_once():
    loop: list[object] = ["fine"]
    loop.append(loop)
    check_text(loop, "loop")
    loop.append("\ud800")
    with pytest.raises(InvalidTextError):
        check_text(loop, "loop")
