"""Run every benchmark in bench/ with its default arguments; merge their JSON results.

Usage: .venv/bin/python bench/run_all.py [--output bench/results/report.json]
(`make bench` calls it.)

A benchmark is any bench/*.py other than this file, apps.py and __init__.py; each
runs as a subprocess (same interpreter, repository root as working directory) and
is expected to write bench/results/<name>.json. Each runs with its default arguments,
except soak.py, which runs for 1 minute (ARGS): a smoke check that the soak works;
its real 30-minute run is `make soak`. The report holds, per benchmark,
its exit status, its wall time and the results it wrote during this run (a results
file not rewritten during this run is reported as missing, never merged stale).
Exit status: 0 when every benchmark exited 0, else 1.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
NOT_BENCHMARKS = {"run_all.py", "apps.py", "__init__.py"}
# Arguments other than the defaults: the soak's default is 30 minutes.
ARGS = {"soak": ["--minutes", "1", "--interval", "15"]}


def discover() -> list[Path]:
    """The benchmark scripts, sorted by name."""
    return sorted(
        path
        for path in BENCH.glob("*.py")
        if path.name not in NOT_BENCHMARKS and not path.name.startswith("_")
    )


def run(script: Path) -> dict[str, Any]:
    """Run one benchmark; its exit status, wall time and fresh results (or why none)."""
    name = script.stem
    results = RESULTS / f"{name}.json"
    command = " ".join([sys.executable, str(script.relative_to(REPO)), *ARGS.get(name, [])])
    print(f"=== {name}: {command}", flush=True)
    started = time.time()
    command = [sys.executable, str(script), *ARGS.get(name, [])]
    exit_status = subprocess.run(command, cwd=REPO, check=False).returncode
    entry: dict[str, Any] = {
        "script": str(script.relative_to(REPO)),
        "exit_status": exit_status,
        "seconds": round(time.time() - started, 1),
    }
    if not results.exists() or results.stat().st_mtime < started:
        entry["results"] = None
        entry["problem"] = f"{results.relative_to(REPO)} was not written by this run"
        return entry
    try:
        entry["results"] = json.loads(results.read_text())
    except json.JSONDecodeError as exc:
        entry["results"] = None
        entry["problem"] = f"{results.relative_to(REPO)} is not JSON: {exc}"
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "report.json", help="merged JSON report"
    )
    args = parser.parse_args(argv)

    started = datetime.now(UTC)
    benchmarks = {script.stem: run(script) for script in discover()}
    report = {
        "report": "bench",
        "at": started.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "benchmarks": benchmarks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print()
    for name, entry in benchmarks.items():
        state = "ok" if entry["exit_status"] == 0 else f"exit {entry['exit_status']}"
        problem = f" ({entry['problem']})" if "problem" in entry else ""
        print(f"{name:12} {state:8} {entry['seconds']:7.1f} s{problem}")
    print(f"wrote {args.output}")
    failed = any(e["exit_status"] != 0 or e["results"] is None for e in benchmarks.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
