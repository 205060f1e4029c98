"""Reading a secret from a file: refused when the file is readable by others.

A proxy secret or a slurmrestd JWT in a file that every local user can read is a
secret no longer: anyone on the host could forge the dashboard's proxy headers or
read every job through slurmrestd. The shipped install lines give such files to
root with the service's group: `install -m 0640 -o root -g gpu-usage FILE` (the
service reads it through its group; nobody else can).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(OSError):
    """The secret file cannot be read, or others can read it; the message says the fix."""


def read_secret_file(path: Path, what: str) -> str:
    """The stripped text of `path`; refused if any user outside its owner and group may
    read or write it. The message names the file and the fix, never its content."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise SecretFileError(
                    f"{what} {path} is readable by every user (mode "
                    f"{stat.filemode(mode)}): refused; fix it with "
                    f"`chmod o-rwx {path}` (install it with `install -m 0640 -o root -g "
                    "gpu-usage`)")
            data = f.read()
    except SecretFileError:
        raise
    except OSError as exc:
        raise SecretFileError(f"{what} {path}: cannot read: {exc.strerror}") from exc
    try:
        return data.decode().strip()
    except UnicodeDecodeError as exc:
        raise SecretFileError(f"{what} {path}: not UTF-8 text") from exc


__all__ = ["SecretFileError", "read_secret_file"]
