"""Counters of the server in Prometheus' text format (``GET /metrics``), kept by hand.

Requests by route and status, prompt and generated tokens, time to first token (a histogram),
requests in flight, and per model the engine's active sequences and queue depth.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """What the server counted since it started; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        self.completion_tokens: Counter[str] = Counter()
        self.ttft_buckets = [0] * len(TTFT_BUCKETS_S)
        self.ttft_count = 0
        self.ttft_sum_s = 0.0
        self.in_flight = 0
        self.cancelled = 0

    def request_done(self, route: str, status: int) -> None:
        """Counts an answered request."""
        with self._lock:
            self.requests[(route, status)] += 1

    def request_started(self) -> None:
        """A request came in."""
        with self._lock:
            self.in_flight += 1

    def request_ended(self) -> None:
        """A request was answered (or abandoned)."""
        with self._lock:
            self.in_flight -= 1

    def generation_done(self, model: str, usage: Any) -> None:
        """Adds a finished generation's token counts (``usage`` may be None)."""
        if usage is None:
            return
        with self._lock:
            self.prompt_tokens[model] += usage.prompt_tokens
            self.completion_tokens[model] += usage.completion_tokens

    def first_token(self, seconds: float) -> None:
        """Adds a time to first token, in seconds."""
        with self._lock:
            self.ttft_count += 1
            self.ttft_sum_s += seconds
            for i, bound in enumerate(TTFT_BUCKETS_S):
                if seconds <= bound:
                    self.ttft_buckets[i] += 1

    def client_gone(self) -> None:
        """Counts a generation cancelled because its client left."""
        with self._lock:
            self.cancelled += 1

    # size: one metric after the other in Prometheus's text format
    def render(self, models: Iterable[Any]) -> str:
        """The Prometheus text exposition of every counter and of each model's queue."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP llamabind_{name} {help_text}")
            out.append(f"# TYPE llamabind_{name} {kind}")
            out.extend(f"llamabind_{name}{labels} {value:g}" for labels, value in samples)

        with self._lock:
            metric(
                "requests_total",
                "counter",
                "HTTP requests answered, by route and status.",
                [
                    (f'{{route="{_escape(r)}",status="{s}"}}', n)
                    for (r, s), n in sorted(self.requests.items())
                ],
            )
            metric(
                "prompt_tokens_total",
                "counter",
                "Prompt tokens of finished generations.",
                [(f'{{model="{_escape(m)}"}}', n) for m, n in sorted(self.prompt_tokens.items())],
            )
            metric(
                "completion_tokens_total",
                "counter",
                "Tokens generated.",
                [
                    (f'{{model="{_escape(m)}"}}', n)
                    for m, n in sorted(self.completion_tokens.items())
                ],
            )
            buckets = [(f'{{le="{b:g}"}}', n) for b, n in zip(TTFT_BUCKETS_S, self.ttft_buckets)]
            metric(
                "time_to_first_token_seconds",
                "histogram",
                "From the request's arrival to its first generated token.",
                [],
            )
            out.extend(
                f"llamabind_time_to_first_token_seconds_bucket{labels} {n}" for labels, n in buckets
            )
            out.append(
                f'llamabind_time_to_first_token_seconds_bucket{{le="+Inf"}} {self.ttft_count}'
            )
            out.append(f"llamabind_time_to_first_token_seconds_sum {self.ttft_sum_s:g}")
            out.append(f"llamabind_time_to_first_token_seconds_count {self.ttft_count}")
            metric(
                "requests_in_flight",
                "gauge",
                "Requests being answered now.",
                [("", self.in_flight)],
            )
            metric(
                "requests_cancelled_total",
                "counter",
                "Generations cancelled because the client went away.",
                [("", self.cancelled)],
            )
        active, waiting = [], []
        steps, decoded, sampled = [], [], []
        for served in models:
            label = f'{{model="{_escape(served.id)}"}}'
            stats = served.batch_stats()
            steps.append((label, stats["n_steps"]))
            decoded.append((label, stats["n_tokens"]))
            sampled.append((label, stats["n_sampled"]))
            info = served.queue_info()
            if info is not None:
                active.append((label, info.n_active))
                waiting.append((label, info.n_waiting))
            else:
                active.append((label, 1 if served.engine.engine.is_generating else 0))
                waiting.append((label, 0))
        metric("active_sequences", "gauge", "Sequences generating now, per model.", active)
        metric("queue_depth", "gauge", "Requests waiting for a sequence, per model.", waiting)
        metric("decode_steps_total", "counter", "Batched decode steps, per model.", steps)
        metric(
            "decode_tokens_total", "counter", "Tokens in batched decode steps, per model.", decoded
        )
        metric(
            "decode_sampled_tokens_total",
            "counter",
            "Tokens generated by batched decode steps (per step: how full the batches were).",
            sampled,
        )
        return "\n".join(out) + "\n"
