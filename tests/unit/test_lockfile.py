"""requirements.lock, which the Docker image installs, fits pyproject.toml (no network here).

The lock pins, with hashes, every runtime dependency and the build backend for the image's
CPython 3.12 on Linux; `make lock` regenerates it. These tests read the file as pip does:
an entry per requirement, continued by backslashes, with its `--hash` options.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
STALE = "requirements.lock does not fit pyproject.toml: run `make lock`"
SHA256 = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def image_environment(machine: str) -> dict[str, str]:
    """Marker values of the image's interpreter (python:3.12-slim-bookworm)."""
    return {
        "implementation_name": "cpython",
        "implementation_version": "3.12.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.12.0",
        "python_version": "3.12",
        "sys_platform": "linux",
    }


IMAGE_MACHINES = ["x86_64", "aarch64"]


@dataclass
class Pin:
    requirement: Requirement
    hashes: list[str]
    text: str
    via: list[str] = field(default_factory=list)

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        (spec,) = self.requirement.specifier
        return Version(spec.version)

    def applies(self, machine: str) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(image_environment(machine))


def read_lock() -> list[Pin]:
    assert LOCK.exists(), "requirements.lock is missing: run `make lock`"
    pins: list[Pin] = []
    entry = ""
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            # uv's annotations: "# via NAME" or "# via" followed by "#   NAME" lines.
            note = stripped.lstrip("#").strip()
            if pins and not entry and note:
                pins[-1].via.append(note.removeprefix("via").strip())
            continue
        entry += stripped.removesuffix("\\").strip() + " "
        if stripped.endswith("\\"):
            continue
        text, entry = entry.strip(), ""
        if not text:
            continue
        assert not text.startswith("-"), f"requirements.lock has an option line {text!r}: {STALE}"
        requirement = text.split(" --", 1)[0]
        pins.append(Pin(Requirement(requirement), SHA256.findall(text), text))
    for pin in pins:
        pin.via = [name for name in pin.via if name]
    assert pins, "requirements.lock pins nothing: run `make lock`"
    return pins


def pins_for(machine: str) -> dict[NormalizedName, Pin]:
    """The pins pip installs on the image for that machine, one per project."""
    applicable: dict[NormalizedName, Pin] = {}
    for pin in read_lock():
        if pin.applies(machine):
            assert pin.name not in applicable, f"{pin.name} is pinned twice on {machine}: {STALE}"
            applicable[pin.name] = pin
    return applicable


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(text) for text in project["dependencies"]]


def build_requirements() -> list[Requirement]:
    build_system = pyproject()["build-system"]
    assert isinstance(build_system, dict)
    return [Requirement(text) for text in build_system["requires"]]


def assert_pinned_within_bounds(
    requirement: Requirement, pins: dict[NormalizedName, Pin], machine: str
) -> None:
    pin = pins.get(canonicalize_name(requirement.name))
    assert pin is not None, f"{requirement} is not pinned for {machine}: {STALE}"
    assert requirement.specifier.contains(pin.version, prereleases=True), (
        f"{pin.name}=={pin.version} is outside pyproject's {requirement}: {STALE}"
    )


@pytest.mark.parametrize("machine", IMAGE_MACHINES)
def test_every_runtime_dependency_is_pinned_within_its_bounds(machine: str) -> None:
    pins = pins_for(machine)
    environment = image_environment(machine)
    for requirement in runtime_requirements():
        if requirement.marker is None or requirement.marker.evaluate(environment):
            assert_pinned_within_bounds(requirement, pins, machine)


@pytest.mark.parametrize("machine", IMAGE_MACHINES)
def test_the_build_backend_is_pinned_within_its_bounds(machine: str) -> None:
    pins = pins_for(machine)
    requirements = build_requirements()
    assert "hatchling" in {canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        assert_pinned_within_bounds(requirement, pins, machine)


def test_every_pin_is_exact_and_hashed() -> None:
    for pin in read_lock():
        specifiers = list(pin.requirement.specifier)
        assert len(specifiers) == 1, f"{pin.text[:80]!r} is not one exact pin: {STALE}"
        assert specifiers[0].operator == "==", f"{pin.text[:80]!r} is not pinned with ==: {STALE}"
        assert "*" not in specifiers[0].version, f"{pin.text[:80]!r} has a wildcard: {STALE}"
        assert pin.requirement.url is None, f"{pin.name} comes from a URL, not PyPI: {STALE}"
        assert pin.hashes, f"{pin.name}=={pin.version} has no --hash=sha256: {STALE}"
        assert pin.text.count("--hash=") == len(pin.hashes), (
            f"{pin.name} has a hash that is not sha256: {STALE}"
        )


def test_no_pin_is_left_from_a_dropped_dependency() -> None:
    declared = {canonicalize_name(r.name) for r in runtime_requirements()}
    for pin in read_lock():
        if any(note.startswith("commcentre ") for note in pin.via):
            assert pin.name in declared, (
                f"{pin.name} is locked for commcentre but pyproject no longer names it: {STALE}"
            )


def dockerfile_runs() -> list[str]:
    """The RUN instructions of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("RUN ")]


def pip_installs() -> list[list[str]]:
    installs = []
    for run in dockerfile_runs():
        for command in run.split("&&"):
            words = command.split()
            if words[:2] == ["pip", "install"]:
                installs.append(words[2:])
    return installs


def test_the_image_installs_the_lock_with_hashes_then_the_project_alone() -> None:
    installs = pip_installs()
    from_lock = [args for args in installs if "requirements.lock" in args]
    assert len(from_lock) == 1, "the Dockerfile must install requirements.lock once"
    (lock_args,) = from_lock
    assert lock_args[lock_args.index("requirements.lock") - 1] == "-r"
    assert "--require-hashes" in lock_args, "the lock must be installed with --require-hashes"
    assert "--no-deps" in lock_args, "installing the lock must resolve nothing"
    project = [args for args in installs if args[-1] == "."]
    assert len(project) == 1, "the Dockerfile must install the project once"
    (project_args,) = project
    assert "--no-deps" in project_args, "the project's dependencies come from the lock alone"
    assert "--no-build-isolation" in project_args, "the project is built by the locked hatchling"
    assert len(installs) == 2, f"the Dockerfile installs something outside the lock: {installs}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock ./" in dockerfile
    assert dockerfile.index("COPY requirements.lock") < dockerfile.index("-r requirements.lock")
