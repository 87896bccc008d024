"""The package and the image definition agree with pyproject.toml and the Helm chart.

No container runtime runs here, so the image itself is not built in the suite; what it is
built from is checked: the wheel ``Dockerfile`` installs holds every module, its Python is the
one ``pyproject.toml`` requires, and the chart runs the version ``pyproject.toml`` declares.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_dirs() -> dict[str, Path]:
    return {
        name: ROOT / path for name, path in PYPROJECT["tool"]["setuptools"]["package-dir"].items()
    }


def _packages_on_disk() -> set[str]:
    found = set()
    for top, directory in _package_dirs().items():
        for init in directory.rglob("__init__.py"):
            relative = init.parent.relative_to(directory)
            found.add(".".join((top, *relative.parts)))
    return found


def test_every_package_is_listed_so_the_wheel_holds_it() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == _packages_on_disk()


def test_the_wheel_holds_every_module_and_the_contract_artifacts(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: setuptools writes build/ next to the sources
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for directory in _package_dirs().values():
        relative = directory.relative_to(ROOT)
        shutil.copytree(directory, source / relative, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("kommons-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for top, directory in _package_dirs().items():
        for module in directory.rglob("*.py"):
            assert f"{top}/{module.relative_to(directory)}" in names
    assert "kommons/settlement/artifacts/Settlement.json" in names
    assert "kommons/py.typed" in names


def test_the_image_runs_the_python_and_the_command_pyproject_declares() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM python:(\d+\.\d+)-slim", dockerfile, flags=re.MULTILINE)
    assert bases, "the image is built on a python:X.Y-slim base"
    requires = PYPROJECT["project"]["requires-python"]  # ">=3.11,<3.12"
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", requires).groups()  # type: ignore[union-attr]
    for base in bases:
        assert (
            tuple(map(int, low.split(".")))
            <= tuple(map(int, base.split(".")))
            < tuple(map(int, high.split(".")))
        )
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', dockerfile, flags=re.MULTILINE)
    assert entrypoint is not None
    assert entrypoint.group(1) in PYPROJECT["project"]["scripts"]
    for path in _package_dirs().values():
        assert f"COPY {path.relative_to(ROOT)} " in dockerfile.replace("./", "")
    user = re.search(r"^USER (\d+):(\d+)", dockerfile, flags=re.MULTILINE)
    values = yaml.safe_load((ROOT / "helm/kommons/values.yaml").read_text())
    assert user is not None
    assert int(user.group(1)) == values["podSecurityContext"]["runAsUser"]


def test_the_chart_runs_the_version_pyproject_declares() -> None:
    chart = yaml.safe_load((ROOT / "helm/kommons/Chart.yaml").read_text())
    assert chart["appVersion"] == PYPROJECT["project"]["version"]
