"""The data-root rule: a path read from a data file (a protocol, a pairs list) names a file inside the data
folder, never an absolute path or one that climbs out of it with ``..``."""

from __future__ import annotations

import os
from pathlib import Path

from lcnn.errors import DataError


def inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``; a :class:`DataError` naming ``where`` when ``relative`` is absolute or leaves ``root``."""
    normal = os.path.normpath(relative)
    if os.path.isabs(relative) or normal == ".." or normal.startswith(".." + os.sep):
        raise DataError(f"{where}: path {relative!r} leaves the data folder {root}")
    return root / normal
