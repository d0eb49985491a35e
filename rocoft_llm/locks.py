"""A lock that leaves no file behind: concurrent processes wait on it while one of them writes a
shared output (prepared data, a converted or fetched model in the cache)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RoCoFTError


def _lock_the_named_file(path: Path, deadline: float) -> int:
    """A descriptor holding an exclusive ``flock`` on the file that ``path`` names when the lock is
    taken. A file its holder removed while this process waited on it is let go, and the file at
    ``path`` (created anew) is locked instead: so two processes never hold the lock at once."""
    pause = 0.01
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RoCoFTError(
                            f"{path} is still held by another process after the wait allowed; if none "
                            "runs (a stuck job), stop it or remove the file, then run again."
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.5)
            try:
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the file was removed by its holder: lock the one at the path now


@contextmanager
def held_lock(path: str | Path, timeout: float = 3600) -> Iterator[None]:
    """Hold the lock ``path`` for the block (others wait on it up to ``timeout`` seconds), and remove
    the lock file before releasing it, whether the block succeeded or failed, so no empty lock file
    stays beside the output. Only a holder removes the file, so while this process holds the lock
    the file at ``path`` is the one it holds (see :func:`_lock_the_named_file`)."""
    path = Path(path)
    fd = _lock_the_named_file(path, time.monotonic() + timeout)
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock
