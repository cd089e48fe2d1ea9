"""Files private to the user running bicameral, whatever the umask.

The data dir holds balances, principals and the signing key, so what bicameral creates there is
for its owner only: folders 0700, files 0600 (SQLite gives its ``-wal`` and ``-shm`` files the
mode of the database file). Files and folders that already exist keep their mode; a data dir
that others may open is warned about once, with the command that closes it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "warn_if_shared"]

log = logging.getLogger("bicameral.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Returns ``path`` after making it and each missing parent with mode 0700."""
    path = Path(path)
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, DIR_MODE)  # mkdir's mode is cut by the umask
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Returns ``path`` after making it, empty and with mode 0600, if it does not exist."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def warn_if_shared(path: str | os.PathLike[str]) -> bool:
    """Returns True, after one warning, when ``path`` is a folder other users may open."""
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    log.warning("data dir %s is open to other users (mode %o); run: chmod 700 %s", path, mode, path)
    return True
