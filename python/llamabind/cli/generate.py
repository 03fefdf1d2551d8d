"""``run`` (one prompt, streamed) and ``chat`` (an interactive conversation)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from llamabind.cli.options import CommandError, generation_params, model_params, resolve
from llamabind.engine import LlamaEngine
from llamabind.session import ChatSession

CHAT_HELP = """commands: /reset forgets the conversation, /system TEXT sets the system prompt,
/exit (or Ctrl-D) quits; Ctrl-C stops a reply"""


def _stream(pieces: Iterator[str], out: TextIO) -> None:
    for piece in pieces:
        out.write(piece)
        out.flush()


def _chunk_text(chunks: Iterator[Any]) -> Iterator[str]:
    for chunk in chunks:
        if chunk.text:
            yield chunk.text


def _stats(usage: Any, finish: str | None) -> str:
    if usage is None:
        return f"[finish: {finish}]"
    return (
        f"[{usage.completion_tokens} tokens, prompt {usage.prompt_tokens} tokens, "
        f"first token after {usage.time_to_first_token_ms or 0:.0f} ms, "
        f"{usage.generation_tokens_per_s or 0:.1f} tokens/s, finish: {finish}]"
    )


def run(args: argparse.Namespace) -> int:
    """Streams one reply to a prompt from the arguments or stdin."""
    prompt = args.prompt
    if prompt is None:
        if sys.stdin.isatty():
            raise CommandError("no prompt: pass one after the model, or pipe it on stdin")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise CommandError("the prompt is empty")
    path = resolve(args.model)
    params = generation_params(args)
    with LlamaEngine(path, model_params(args)) as engine:
        if args.raw:
            if args.echo:
                sys.stdout.write(prompt)
            stream = engine.start_generation(prompt, params)
            _stream(iter(stream), sys.stdout)
            usage, finish = stream.usage, stream.finish_reason
        else:
            messages = [{"role": "system", "content": args.system}] if args.system else []
            messages.append({"role": "user", "content": prompt})
            last = None
            for chunk in engine.create(messages, params):
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                last = chunk
            usage, finish = (last.usage, last.finish_reason) if last else (None, None)
    sys.stdout.write("\n")
    if args.verbose:
        print(_stats(usage, finish), file=sys.stderr)
    return 0


def _read_line(prompt: str) -> str | None:
    """A line from the user (None at end of input); Ctrl-C gives an empty line."""
    try:
        if sys.stdin.isatty():
            return input(prompt)
        line = sys.stdin.readline()
        return line.rstrip("\n") if line else None
    except EOFError:
        return None
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return ""


def _reply(session: ChatSession, text: str, args: argparse.Namespace) -> None:
    stream = session.create(text, generation_params(args))
    try:
        _stream(_chunk_text(stream), sys.stdout)
    except KeyboardInterrupt:
        sys.stdout.write(" [stopped]")
    finally:
        stream.close()  # type: ignore[attr-defined]  # cancels an unfinished reply
    sys.stdout.write("\n")
    sys.stdout.flush()


def chat(args: argparse.Namespace) -> int:
    """An interactive conversation; the history is kept between turns."""
    path = resolve(args.model)
    interactive = sys.stdin.isatty()
    with LlamaEngine(path, model_params(args)) as engine:
        engine.get_context_size()  # load now, so a bad model fails before the first prompt
        session = ChatSession(engine, system_prompt=args.system)
        if interactive:
            print(f"chatting with {path.name}; {CHAT_HELP}", file=sys.stderr)
        while True:
            line = _read_line(">>> " if interactive else "")
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit", "/bye"):
                break
            if text == "/reset":
                session.reset()
                print("[conversation reset]", file=sys.stderr)
            elif text == "/system" or text.startswith("/system "):
                session.system_prompt = text[len("/system") :].strip() or None
                session.reset()
                print("[system prompt set; conversation reset]", file=sys.stderr)
            elif text.startswith("/"):
                print(f"[unknown command {text.split()[0]}; {CHAT_HELP}]", file=sys.stderr)
            else:
                _reply(session, text, args)
    return 0
