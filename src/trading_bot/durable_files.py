"""Durable file writes: the logs lock, append-with-fsync and atomic replace.

Every writer of the journal and the phase logs takes the one lock in the logs folder,
so the bot loop and the CLI can run at once without interleaving lines.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from trading_bot.errors import Busy

# Beside the logs: caches derived from them (index, saved fold, verified prefixes). Any
# file there may be deleted at any moment; it costs a rebuild, never an answer.
DERIVED_DIR = ".derived"

LOCK_FILE_NAME = ".phase.lock"
LOCK_TIMEOUT_SECONDS = 10.0


class LogsLock:
    """The single inter-process lock serializing all log writers. Re-entrant in-process."""

    def __init__(self, logs_dir: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.path = Path(logs_dir) / LOCK_FILE_NAME
        self.timeout = timeout
        self._lock: FileLock | None = None

    def _file_lock(self) -> FileLock:
        if self._lock is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path), timeout=self.timeout, thread_local=False)
        return self._lock

    @contextmanager
    def held(self) -> Iterator[None]:
        lock = self._file_lock()
        try:
            lock.acquire()
        except Timeout:
            raise Busy(str(self.path), self.timeout) from None
        try:
            yield
        finally:
            lock.release()

    @property
    def is_held(self) -> bool:
        return self._lock is not None and self._lock.is_locked


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file's directory entry durable (no-op where unsupported)."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# A batch of lines is written in chunks of about this size (whole lines each), so a large
# catch-up never builds one huge buffer, and still costs a handful of writes.
APPEND_CHUNK_BYTES = 256 * 1024


def append_durably(path: Path, data: bytes) -> None:
    """Append bytes and fsync before returning; the caller holds the logs lock."""
    append_many_durably(path, [data])


def append_many_durably(
    path: Path, lines: Sequence[bytes], expected_size: int | None = None, chunk_bytes: int = APPEND_CHUNK_BYTES
) -> None:
    """Append several lines with as few writes as their size allows and ONE fsync.

    The caller holds the logs lock. A crash part-way leaves a prefix of the lines plus at
    most one torn line, which the readers ignore and the next writer sets aside. With
    `expected_size`, refuses (FileChanged, nothing written) unless the file is that long:
    lines chained onto bytes the caller read must not land after bytes it never saw.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if expected_size is not None and os.fstat(fd).st_size != expected_size:
            raise FileChanged(str(path))
        for chunk in _chunks(lines, chunk_bytes):
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


class FileChanged(OSError):
    """The file is not the length its writer expected: someone else wrote it meanwhile."""


def _chunks(lines: Sequence[bytes], limit: int) -> Iterator[bytes]:
    """Join whole lines into chunks of at most `limit` bytes (a longer line is its own chunk)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > limit:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield b"".join(chunk)


def written_path(path: Path) -> Path:
    """Where a replace of `path` lands: the file a symbolic link points to, else itself."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace a file atomically: temp file in the same folder, fsync, rename, fsync dir.

    A crash at any point leaves either the old file or the new one, never a mix. A path
    that is a symbolic link is written through to its target (the link stays a link).
    """
    path = written_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        try:
            os.fchmod(fd, os.stat(path).st_mode & 0o7777)  # a replaced file keeps its permissions
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(path.parent)


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Temp files an atomic write left behind when killed before its rename; the caller
    holds the logs lock, so no write of ours is in flight."""
    path = written_path(path)
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            candidate.unlink()
            removed.append(candidate)
        except FileNotFoundError:
            pass
    return removed


class StatsOncePerRead:
    """A reader that stats its file before each answer, except inside `one_read()`: there
    the first stat serves every question, so several questions get one consistent answer
    (a pre-trade check asks a log or the high-water more than once)."""

    _holding = 0
    _held_fresh = False

    @contextmanager
    def one_read(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if self._holding == 0:
                self._held_fresh = False

    def _stat_due(self, force: bool = False) -> bool:
        """Whether to stat now: always outside a block, once inside it (or when forced)."""
        if self._holding and self._held_fresh and not force:
            return False
        self._held_fresh = bool(self._holding)
        return True

    def _forget_read(self) -> None:
        self._held_fresh = False
