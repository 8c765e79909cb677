"""Durable file writes: the logs lock, append-with-fsync and atomic replace.

Every writer of the journal and the phase logs takes the one lock in the logs folder,
so the bot loop and the CLI can run at once without interleaving lines. The lock also
keeps the desk's generation (`LogsLock.generation`): one stat tells a reader whether any
process wrote anything under the lock since it last looked.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING, BinaryIO

from trading_bot.errors import Busy

if TYPE_CHECKING:
    from filelock import FileLock

# Beside the logs: caches derived from them (index, saved fold, verified prefixes). Any
# file there may be deleted at any moment; it costs a rebuild, never an answer.
DERIVED_DIR = ".derived"

LOCK_FILE_NAME = ".phase.lock"
LOCK_TIMEOUT_SECONDS = 10.0

# The generation file, a cache marker beside the derived state (never a record): its
# length counts the holds of the logs lock in which something was written.
GENERATION_FILE = Path(DERIVED_DIR) / "generation"
# Past this length the next settled hold starts it over as a new, empty file.
GENERATION_RESTART_BYTES = 65536

# The logs locks this process holds (outermost holds), so a durable write made while one
# is held marks that desk's generation before it lands.
_HELD: list[LogsLock] = []


class LogsLock:
    """The single inter-process lock serializing all log writers. Re-entrant in-process."""

    def __init__(self, logs_dir: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.path = Path(logs_dir) / LOCK_FILE_NAME
        self.timeout = timeout
        self._lock: FileLock | None = None
        self.generation_path = Path(logs_dir) / GENERATION_FILE
        self._generation_name = str(self.generation_path)
        self._writing = False  # this hold has marked the generation as being written

    def _file_lock(self) -> FileLock:
        if self._lock is None:
            # Imported by the first hold: a command that writes nothing never loads it.
            from filelock import FileLock

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path), timeout=self.timeout, thread_local=False)
        return self._lock

    @contextmanager
    def held(self) -> Iterator[None]:
        lock = self._file_lock()
        from filelock import Timeout

        try:
            lock.acquire()
        except Timeout:
            raise Busy(str(self.path), self.timeout) from None
        outermost = lock.lock_counter == 1
        if outermost:
            self._writing = False
            _HELD.append(self)
        try:
            yield
        finally:
            try:
                if outermost:
                    _HELD.remove(self)
                    if self._writing:
                        self._writing = False
                        try:
                            self._settle_generation()
                        except OSError:
                            pass  # left odd: every reader reads the records in full, which is safe
            finally:
                lock.release()

    # ---- the generation: has anyone written under the lock since I looked? ----------------
    #
    # A seqlock in a file's length. The first durable write of a hold makes the length odd
    # (before the write lands); the end of the hold makes it even. A reader that finds the
    # same even length, inode and mtime as before knows no process wrote anything under the
    # lock in between. A writer killed mid-hold leaves the length odd: every reader then
    # reads the records in full until the next writer's hold settles it again.

    def generation(self) -> tuple[int, int, int] | None:
        """The settled generation (inode, length, mtime), or None: no file yet, or a hold
        that wrote is still open (or was killed), so nothing may be taken as unchanged."""
        try:
            stat = os.stat(self._generation_name)
        except OSError:
            return None
        if stat.st_size & 1 or not S_ISREG(stat.st_mode):
            return None  # a FIFO or device never changes length: it could vouch for anything
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _mark_writing(self) -> None:
        """Before the first write of this hold lands: an odd length, different from before."""
        if self._writing:
            return
        fd = self._open_generation()
        if fd is None:
            self._writing = True  # a directory in its place: every reader reads in full anyway
            return
        try:
            size = os.fstat(fd).st_size
            with _naming(self.generation_path):
                os.write(fd, b"..." if size & 1 else b".")  # odd already (a killed writer): still odd, longer
        finally:
            os.close(fd)
        self._writing = True

    def _settle_generation(self) -> None:
        """The hold's writes have landed: an even length (or a new empty file, when long)."""
        try:
            size = os.stat(self._generation_name).st_size
        except FileNotFoundError:
            size = 0
        if size >= GENERATION_RESTART_BYTES:
            # A new file (a new inode: the old one still exists while it is created).
            fd, tmp_name = tempfile.mkstemp(prefix=".generation.", suffix=".tmp", dir=str(self.generation_path.parent))
            os.close(fd)
            os.replace(tmp_name, self._generation_name)
            return
        fd = self._open_generation()
        if fd is None:
            return
        try:
            os.write(fd, b"." if size & 1 else b"..")  # even already (the file was replaced): still even, longer
        finally:
            os.close(fd)

    def _open_generation(self) -> int | None:
        """The generation file open for appending. A FIFO or device in its place (the file
        is a cache) is replaced by a new empty file rather than written to or waited on.
        None for a directory in its place, or when `.derived` is no folder: neither can be
        replaced, and `generation()` never vouches for them, so a write goes on unmarked (a
        cache never stops a record)."""
        try:
            self.generation_path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            return None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self._generation_name, flags, 0o644)
        except OSError as error:
            if error.errno in (errno.EISDIR, errno.ENOTDIR):
                return None
            if error.errno != errno.ENXIO:  # ENXIO: a FIFO nobody reads
                raise
        else:
            if S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
        made, tmp_name = tempfile.mkstemp(prefix=".generation.", suffix=".tmp", dir=str(self.generation_path.parent))
        os.close(made)
        os.replace(tmp_name, self._generation_name)
        return os.open(self._generation_name, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    @property
    def is_held(self) -> bool:
        return self._lock is not None and self._lock.is_locked


def _before_durable_write() -> None:
    """Mark the generation of every logs lock this process holds: a write is about to land.

    A mark that cannot be written stops the write (OSError), so no record ever lands that
    a reader of the generation could take as unchanged."""
    for lock in _HELD:
        lock._mark_writing()


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
    _before_durable_write()
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    # Only ever a regular file: a FIFO would hang the writer, a link to /dev/null would
    # swallow the record of an order.
    fd = _regular_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        if expected_size is not None and os.fstat(fd).st_size != expected_size:
            raise FileChanged(str(path))
        with _naming(path):
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


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A write the disk refuses (os.write or fsync: EFBIG, ENOSPC, EIO) carries no file
    name; it is given the file's, so the one line a command prints names the right file."""
    try:
        yield
    except OSError as error:
        if type(error) is OSError and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


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
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if not S_ISREG(mode):
        # A link to /dev/zero or a FIFO: a replace would swap out a device node, not a file.
        raise NotARegularFile(errno.EINVAL, f"a link to {target}, not a regular file", str(path))
    return target


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace a file atomically: temp file in the same folder, fsync, rename, fsync dir.

    A crash at any point leaves either the old file or the new one, never a mix. A path
    that is a symbolic link is written through to its target (the link stays a link).
    """
    path = written_path(path)
    _before_durable_write()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as error:
        # The temp file's name means nothing to the operator: the file that cannot be
        # written is this one, whose folder takes no new file.
        raise type(error)(error.errno, f"cannot be replaced: its folder takes no new file ({error.strerror})", str(path)) from error
    try:
        try:
            os.fchmod(fd, os.stat(path).st_mode & 0o7777)  # a replaced file keeps its permissions
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with _naming(path), os.fdopen(fd, "wb") as handle:
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


class NotARegularFile(OSError):
    """A desk file that is a FIFO, a device or a socket: reading it could block forever or
    never end (`/dev/zero`), so it is refused like a missing permission."""


def _regular_fd(path: str | os.PathLike[str], flags: int) -> int:
    """A descriptor of a desk file opened with `flags`, refusing anything but a regular file
    (symlinks are followed). The open itself never blocks: a FIFO with no writer (or, for
    writing, no reader) is seen, not waited on."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise NotARegularFile(errno.EINVAL, "not a regular file (a FIFO, device or socket)", os.fspath(path)) from error
        raise
    try:
        mode = os.fstat(fd).st_mode
        if S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not S_ISREG(mode):
            raise NotARegularFile(errno.EINVAL, "not a regular file (a FIFO, device or socket)", os.fspath(path))
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_regular(path: str | os.PathLike[str], mode: str = "rb") -> BinaryIO:
    """Open a desk file for reading (`rb`) or for changing in place (`r+b`), refusing
    anything but a regular file (see `_regular_fd`)."""
    flags = {"rb": os.O_RDONLY, "r+b": os.O_RDWR}[mode]
    return os.fdopen(_regular_fd(path, flags), mode)


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a desk file, refusing a FIFO or device (see `open_regular`)."""
    with open_regular(path) as handle:
        return handle.read()
