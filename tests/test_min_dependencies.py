"""pyproject.toml's floors are the releases that ``make test-min`` tests."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="Python < 3.11 has no tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _project():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _pins():
    """requirements/min.txt as {name: version}."""
    pins = {}
    for line in (ROOT / "requirements" / "min.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        pins[requirement.name] = Version(specifier.version)
    return pins


def test_every_dependency_floor_is_pinned_in_min_requirements():
    pins = _pins()
    for line in _project()["dependencies"]:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == ">=", f"{line}: a floor, and nothing else"
        assert pins.get(requirement.name) == Version(specifier.version), (
            f"pyproject.toml has {line}, requirements/min.txt "
            f"{requirement.name}=={pins.get(requirement.name)}"
        )


def test_pinned_test_tools_satisfy_the_test_extra():
    pins = _pins()
    runtime = {Requirement(line).name for line in _project()["dependencies"]}
    test_extra = [
        Requirement(line) for line in _project()["optional-dependencies"]["test"]
    ]
    assert set(pins) == runtime | {requirement.name for requirement in test_extra}
    for requirement in test_extra:
        assert requirement.specifier.contains(pins[requirement.name]), requirement
