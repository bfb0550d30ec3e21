"""Where the project and its local state live."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout: ``$PISTATS_HOME`` if set, else the folder holding project.clj above this file or cwd."""
    if os.environ.get("PISTATS_HOME"):
        return Path(os.environ["PISTATS_HOME"]).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "project.clj").is_file() and (candidate / "config.json").is_file():
                return candidate
    return Path.cwd().resolve()


def state_dir() -> Path:
    """Project-local state: service data, logs, the assembled Storm, node modules."""
    return Path(os.environ.get("PISTATS_STATE_DIR", project_root() / ".pistats")).resolve()


def storm_home() -> Path:
    return Path(os.environ.get("STORM_HOME", state_dir() / "storm")).resolve()
