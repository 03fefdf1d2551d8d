"""Runs the fuzz harnesses of tests/fuzz/ for a bounded time each and reports what they found.

    python scripts/fuzz.py --seconds 300              # every harness, 5 minutes each
    python scripts/fuzz.py --only grammar --only template --seconds 60

Each harness (``tests/fuzz/harness.py NAME``, atheris on libFuzzer) starts from its committed
seeds (``tests/fuzz/corpus/NAME``) and the inputs earlier runs kept (``build/fuzz/NAME/corpus``).
A crash, a hang (an input running past ``--timeout``) or an exception outside llamabind's
error hierarchy stops libFuzzer, which writes the input to ``build/fuzz/NAME/findings/``; the
harness is then started again for the rest of its time. Prints the executions per harness and
every finding; exits with status 1 when there was one. Needs the ``fuzz`` extra
(``pip install -e ".[fuzz]"``); not part of the test suite (``tests/fuzz/test_seeds.py`` runs
the seeds once).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = REPO_ROOT / "tests" / "fuzz"
NAMES = ("gguf", "grammar", "json_schema", "chat_parse", "template", "resolvers")
_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_REASONS = (
    re.compile(r"=== Uncaught Python exception: ===\s*\n(.+)"),
    re.compile(r"==\d+== ERROR: libFuzzer: (.*)"),
    re.compile(r"ALARM: working on the last Unit for (\d+ seconds)"),
)


@dataclass
class Report:
    """What one harness did: executions, seconds, findings (input path, reason)."""

    name: str
    n_execs: int = 0
    seconds: float = 0.0
    findings: list[tuple[str, str]] = field(default_factory=list)


def reason_of(log: str) -> str:
    for pattern in _REASONS:
        match = pattern.search(log)
        if match:
            return match[1].strip()[:300]
    return "libFuzzer stopped (see the log)"


def run_harness(name: str, seconds: float, args: argparse.Namespace) -> Report:
    out = args.out / name
    corpus, findings = out / "corpus", out / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    report = Report(name)
    env = dict(os.environ)
    python_dir = str(REPO_ROOT / "python")
    if not env.get("PYTHONPATH") and args.source_tree:
        env["PYTHONPATH"] = python_dir
    start = time.monotonic()
    n_run = 0
    while (left := seconds - (time.monotonic() - start)) >= 1 and n_run <= args.max_restarts:
        n_run += 1
        argv = [
            sys.executable,
            str(FUZZ_DIR / "harness.py"),
            name,
            str(corpus),
            str(FUZZ_DIR / "corpus" / name),
            f"-max_total_time={int(left)}",
            f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-artifact_prefix={findings}/",
            "-print_final_stats=1",
        ]
        log_path = out / f"log-{time.strftime('%Y%m%d-%H%M%S')}-{n_run}.txt"
        with log_path.open("w") as log_file:
            proc = subprocess.run(
                argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=out, check=False
            )
        log = log_path.read_text(errors="replace")
        report.n_execs += sum(int(n) for n in _EXECS.findall(log))
        artifacts = _ARTIFACT.findall(log)
        for artifact in artifacts:
            report.findings.append((str((out / artifact).resolve()), reason_of(log)))
        if proc.returncode != 0 and not artifacts:
            report.findings.append((str(log_path), f"the harness exited with {proc.returncode}"))
        if proc.returncode == 0:
            break
    report.seconds = time.monotonic() - start
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="fuzzing time per harness (default 60)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this harness (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=20,
        help="seconds one input may run before it counts as a hang (default 20)",
    )
    parser.add_argument(
        "--rss-limit-mb",
        type=int,
        default=4096,
        help="memory limit of a harness process in MiB (default 4096)",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=20,
        help="how often a harness is started again after a finding (default 20)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "build" / "fuzz",
        help="where corpora, findings and logs go (default build/fuzz)",
    )
    parser.add_argument(
        "--source-tree",
        action="store_true",
        help="import llamabind from python/ in this checkout (when not installed)",
    )
    args = parser.parse_args()
    args.out = args.out.resolve()
    reports = []
    for name in args.only or NAMES:
        print(f"fuzzing {name} for {args.seconds:.0f} s ...", flush=True)
        report = run_harness(name, args.seconds, args)
        reports.append(report)
        rate = report.n_execs / report.seconds if report.seconds else 0.0
        print(
            f"  {name}: {report.n_execs} executions in {report.seconds:.0f} s "
            f"({rate:.1f}/s), {len(report.findings)} finding(s)",
            flush=True,
        )
        for path, reason in report.findings:
            print(f"    {reason}\n      input: {path}", flush=True)
    total = sum(len(r.findings) for r in reports)
    print(f"\n{sum(r.n_execs for r in reports)} executions, {total} finding(s)")
    raise SystemExit(1 if total else 0)


if __name__ == "__main__":
    main()
