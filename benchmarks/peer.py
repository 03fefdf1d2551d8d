"""llama-cpp-python's side of speed.py: one round on one model, in a process of its own.

Not run by hand: speed.py starts it with ``--child SPEC`` (the model, the settings and the
token ids of both prompts) and reads the samples it prints as JSON. It never imports
llamabind, so that the two bindings' copies of llama.cpp never share a process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import harness


class Peer:
    """llama-cpp-python on the same model and settings as speed.py's llamabind rows."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from llama_cpp import Llama

        args = spec["args"]
        self.llm = Llama(model_path=spec["path"], n_ctx=args["n_prompt"] + args["n_gen"] + 128,
                         n_threads=args["threads"], n_threads_batch=args["threads"],
                         n_gpu_layers=args["n_gpu_layers"], verbose=False,
                         # It has no "auto"; llama.cpp resolves auto to on wherever every
                         # layer's device supports flash attention (the CPU and CUDA do).
                         flash_attn=args["flash_attn"] != "off")
        self.prompt_ids: list[int] = spec["prompt_ids"]
        self.gen_prompt_ids: list[int] = spec["gen_prompt_ids"]

    def _tokens(self, ids: list[int]) -> Any:
        self.llm.reset()
        return self.llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True)

    def prompt(self) -> float:
        """Time to first token in ms."""
        start = time.perf_counter()
        tokens = self._tokens(self.prompt_ids)
        next(tokens)
        ttft_ms = (time.perf_counter() - start) * 1000
        tokens.close()
        return ttft_ms

    def generate(self, n_gen: int) -> float:
        """Tokens/s seen by Python between the first and the last of n_gen tokens."""
        tokens = self._tokens(self.gen_prompt_ids)
        first = last = 0.0
        for i, _ in enumerate(tokens, 1):
            last = time.perf_counter()
            if not first:
                first = last
            if i == n_gen:
                break
        tokens.close()
        return (n_gen - 1) / (last - first)


def child(spec: dict[str, Any]) -> None:
    peer = Peer(spec)
    peer.prompt()  # warm-up: page cache, graph allocation, thread pool
    peer.generate(16)
    print(json.dumps({"samples": {"peer_ttft_ms": [peer.prompt()],
                                  "peer": [peer.generate(spec["args"]["n_gen"])]}}))


if __name__ == "__main__":
    spec = harness.child_spec(sys.argv)
    if spec is None:
        raise SystemExit(__doc__)
    child(spec)
