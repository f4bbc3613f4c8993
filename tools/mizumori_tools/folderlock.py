"""One process per folder (a demo's data, a rig's flash) or per port: an flock beside
it (docs/rig.md)."""

import errno
import fcntl
import os
from pathlib import Path


class FolderBusy(Exception):
    """Another run holds the data folder."""

    def __init__(self, folder: Path, pid: int | None):
        self.folder, self.pid = folder, pid
        super().__init__(f"{folder} is in use by process {pid or '?'}")


class FolderLock:
    """One demo or fleet per data folder: an flock on FOLDER.lock beside it, holding the
    owner's PID. The kernel drops the lock when its process ends however it ends, so a lock
    file left by a dead process is simply taken over."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder.with_name(folder.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock, or raise FolderBusy naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise FolderBusy(self.folder, int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # (the file stays: removing it would race a new owner)
            self._fd = None
