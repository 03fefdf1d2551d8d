"""A chat prompt to token ids: the template's markers become control tokens, data stays text.

The prompt is tokenized as llama.cpp tokenizes a chat prompt (``parse_special=True``: the
text of a control token becomes that token). Data (message content, reasoning, tool-call
arguments, tool results; see :mod:`llamabind.chat.marking`) must never become a control
token, so where the text of a control token overlaps a data span, that span is tokenized on
its own with ``parse_special=False`` and the template text around it with
``parse_special=True``. A prompt whose data holds no control-token text is tokenized in one
piece, exactly as before, so ordinary conversations keep their tokens (and their KV cache).

User-defined tokens (added tokens that are not control tokens, e.g. Qwen's ``<tool_call>``
or Gemma's runs of newlines) are matched in text by the tokenizer itself, as Hugging Face
tokenizers do; they are not control tokens and are left to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ControlTexts", "prompt_token_ids"]

_ATTR_UNKNOWN = 1 << 0  # llama_token_attr: what parse_special=False never produces
_ATTR_CONTROL = 1 << 3


class ControlTexts:
    """The texts of a vocabulary's control tokens, found in a prompt by position.

    Args:
        texts: The texts (empty ones are ignored).
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = frozenset(text for text in texts if text)
        self._lengths = sorted({len(text) for text in self.texts}, reverse=True)
        firsts = "".join(sorted({text[0] for text in self.texts}))
        self._first = re.compile(f"[{re.escape(firsts)}]") if firsts else None
        self.max_length = self._lengths[0] if self._lengths else 0

    @classmethod
    def of_model(cls, model: Any) -> ControlTexts:
        """The control (and unknown) tokens of a loaded ``_native.Model``."""
        special = _ATTR_CONTROL | _ATTR_UNKNOWN
        return cls(
            [
                model.token_text(token)
                for token in range(model.n_vocab)
                if model.token_attr(token) & special
            ]
        )

    def overlaps(self, text: str, start: int, end: int) -> bool:
        """Whether the text of a control token in ``text`` overlaps ``text[start:end]``."""
        if self._first is None or start >= end:
            return False
        window_start = max(0, start - self.max_length + 1)
        for match in self._first.finditer(
            text, window_start, min(len(text), end + self.max_length)
        ):
            at = match.start()
            if at >= end:
                return False
            for length in self._lengths:
                if at + length > start and text[at : at + length] in self.texts:
                    return True
        return False


def prompt_token_ids(
    model: Any, prompt: str, data_spans: Sequence[tuple[int, int]], controls: ControlTexts
) -> list[int]:
    """Token ids of a chat prompt, BOS/EOS added as the model wants.

    Args:
        model: The ``_native.Model`` whose vocabulary tokenizes.
        prompt: The rendered prompt.
        data_spans: ``(start, end)`` character spans of message data in ``prompt``.
        controls: The model's control-token texts.

    Returns:
        The ids. A BOS the template wrote itself (its text at the start) is not doubled.
    """
    unsafe = [(start, end) for start, end in data_spans if controls.overlaps(prompt, start, end)]
    tokens: list[int]
    if not unsafe:
        tokens = model.tokenize(prompt, add_special=True, parse_special=True)
    else:
        tokens = _split_tokens(model, prompt, unsafe)
    bos = model.special_tokens.get("bos", -1)
    if len(tokens) > 1 and tokens[0] == tokens[1] == bos:  # the template wrote BOS too
        tokens = tokens[1:]
    return tokens


def _split_tokens(model: Any, prompt: str, unsafe: list[tuple[int, int]]) -> list[int]:
    """Template text with control tokens parsed, the unsafe data spans as plain text."""
    special = model.special_tokens
    tokens: list[int] = []
    if model.add_bos and special.get("bos", -1) >= 0:
        tokens.append(special["bos"])
    at = 0
    for start, end in unsafe:
        if start > at:
            tokens += model.tokenize(prompt[at:start], add_special=False, parse_special=True)
        tokens += model.tokenize(prompt[start:end], add_special=False, parse_special=False)
        at = end
    if at < len(prompt):
        tokens += model.tokenize(prompt[at:], add_special=False, parse_special=True)
    if model.add_eos and special.get("eos", -1) >= 0:
        tokens.append(special["eos"])
    return tokens
