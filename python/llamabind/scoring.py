"""Scoring the next token: log-probabilities after a prompt, from the raw logits.

``LlamaEngine.score_next_token`` leases a sequence slot like a generation does, evaluates the
part of the prompt the slot's cache does not hold yet, and reads the last logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llamabind import _native
from llamabind.errors import StateError
from llamabind.lifecycle import LoadedModel
from llamabind.slots import SlotLease
from llamabind.types import LlamaNextTokenScores, LlamaTokenLogprob


def score_next_token(
    loaded: LoadedModel, prompt: str, candidates: Sequence[int], top_k: int
) -> LlamaNextTokenScores:
    """Log-probabilities of the token after ``prompt`` (see ``LlamaEngine.score_next_token``).

    Raises:
        ValueError: an empty prompt, a token id outside the vocabulary, or neither candidates
            nor top_k given.
        StateError: cancelled while waiting for a sequence.
    """
    model = loaded.model
    if not candidates and top_k <= 0:
        raise ValueError("score_next_token needs candidates or top_k > 0")
    for token in candidates:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < model.n_vocab:
            raise ValueError(f"candidate {token!r} is not a token id in [0, {model.n_vocab})")
    tokens = model.tokenize(prompt, add_special=True, parse_special=True) if prompt else []
    if not tokens:
        raise ValueError("score_next_token needs a non-empty prompt")
    logprobs = _log_softmax(_last_logits(loaded, tokens))

    def entry(token: int) -> LlamaTokenLogprob:
        piece = model.token_to_piece(token, True).decode("utf-8", errors="replace")
        return LlamaTokenLogprob(token, piece, float(logprobs[token]))

    top: list[int] = [int(t) for t in np.argsort(-logprobs)[:top_k]] if top_k > 0 else []
    return LlamaNextTokenScores(
        tuple(entry(int(t)) for t in candidates), tuple(entry(int(t)) for t in top), len(tokens)
    )


def _last_logits(loaded: LoadedModel, tokens: list[int]) -> np.ndarray:
    """The logits after ``tokens``, evaluated on a leased sequence that reuses its cache."""
    seq = loaded.slots.acquire(SlotLease(), tokens)
    if seq is None:
        raise StateError("score_next_token was cancelled while it waited for a sequence")
    try:
        context = loaded.context
        keep = 0
        for held, wanted in zip(context.cached_tokens(seq), tokens[:-1]):
            if held != wanted:
                break
            keep += 1
        if not context.memory_remove(seq, keep, -1):
            context.memory_remove(seq, -1, -1)
        if not context.cached_tokens(seq):
            keep = 0
        try:
            context.decode(tokens[keep:], seq, "last")
            return context.logits(-1).astype(np.float64)
        finally:
            _native.release_compute_threads()  # this thread may not compute again soon
    finally:
        loaded.slots.release(seq)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = np.max(logits)
    result: np.ndarray = logits - (peak + np.log(np.sum(np.exp(logits - peak))))
    return result
