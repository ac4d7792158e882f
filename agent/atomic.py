"""Files written whole or not at all: a temporary file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

NEW_FILE_MODE = 0o660  # a file with no earlier version to take its mode from


def write_atomically(directory: Path | int, name: str, data: bytes, *,
                     mode: int | None = None, keep_owner: bool = False) -> None:
    """Make ``name`` in ``directory`` hold ``data``: after a crash it holds the old data or
    the new, never part. ``directory`` is a path, or an open directory's descriptor (the
    renderer's, which never follows a symlink out of its output dir).

    ``mode``: the new file's; None keeps the old file's (``NEW_FILE_MODE`` for a new one).
    ``keep_owner``: running as root, the new file gets the old file's owner (for a new
    one, the directory's): a file another user's process reads (mariadbd's).
    A leftover temporary is removed on any error."""
    fd = directory if isinstance(directory, int) else os.open(directory,
                                                              os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            old: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        temporary = f".{name}.tmp-{secrets.token_hex(4)}"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o600, dir_fd=fd)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                if mode is None:
                    mode = old.st_mode & 0o777 if old is not None else NEW_FILE_MODE
                os.fchmod(out.fileno(), mode)
                if keep_owner and os.geteuid() == 0:
                    owner = old if old is not None else os.fstat(fd)
                    os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
                os.fsync(out.fileno())
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=fd)
            raise
        os.fsync(fd)
    finally:
        if not isinstance(directory, int):
            os.close(fd)
