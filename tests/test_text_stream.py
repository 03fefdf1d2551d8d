"""TextStream: UTF-8 never split, stop strings across token boundaries, nothing lost."""

from __future__ import annotations

import pytest

from llamabind.text_stream import TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> list[str]:
    out = [stream.feed(p) for p in pieces]
    out.append(stream.flush())
    return [o for o in out if o]


def test_multibyte_character_split_across_pieces_is_held_until_complete():
    data = "naïve 日本語 🙂".encode()
    pieces = [data[i:i + 1] for i in range(len(data))]  # one byte per "token"
    out = feed_all(TextStream(), pieces)
    assert "".join(out) == "naïve 日本語 🙂"
    assert all("\ufffd" not in piece for piece in out)


def test_incomplete_character_at_the_end_becomes_a_replacement_char():
    assert "".join(feed_all(TextStream(), [b"ok", "é".encode()[:1]])) == "ok\ufffd"


@pytest.mark.parametrize("split", range(1, 12))
def test_stop_string_spanning_pieces_is_cut_and_not_emitted(split):
    text = b"Hello END world"
    stream = TextStream(["END"])
    out = feed_all(stream, [text[:split], text[split:]])
    assert "".join(out) == "Hello "
    assert stream.stopped and stream.matched_stop == "END"


def test_partial_stop_that_does_not_complete_is_emitted():
    stream = TextStream(["STOP"])
    assert stream.feed(b"a ST") == "a "
    assert stream.feed(b"AMP") == "STAMP"
    assert stream.flush() == ""
    stream = TextStream(["STOP"])
    assert feed_all(stream, [b"x ST"]) == ["x ", "ST"]  # held back, then flushed at the end
    assert not stream.stopped


def test_earliest_of_several_stops_wins_and_later_text_is_dropped():
    stream = TextStream(["</s>", "\n\n"])
    assert stream.feed(b"one\n\ntwo</s>") == "one"
    assert stream.feed(b"more") == ""
    assert stream.matched_stop == "\n\n"
