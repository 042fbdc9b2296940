"""Installing the example third-party provider (tests/sms/example_plugin) for a test.

It is installed the way pip installs a wheel, minus pip: the package and a
``*.dist-info`` directory whose ``entry_points.txt`` is generated from the
example's own ``pyproject.toml``, in a directory put on ``sys.path`` (or on
``PYTHONPATH`` of a subprocess).  ``importlib.metadata`` then finds the entry
point exactly as it finds an installed distribution's.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twostep.sms import registry

EXAMPLE = Path(__file__).resolve().parent / "example_plugin"


def install_example(target: Path) -> Path:
    """Lay out the example distribution under ``target``; return ``target``."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    shutil.copytree(EXAMPLE / "twostep_acme_sms", target / "twostep_acme_sms", dirs_exist_ok=True)
    dist_info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return target


@contextmanager
def example_installed(target: Path) -> Iterator[Path]:
    """The example provider is discoverable inside the block, and gone after it."""
    install_example(target)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    registry.discover(refresh=True)
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("twostep_acme_sms", None)
        importlib.invalidate_caches()
        registry.discover(refresh=True)
