"""Files: the one reader and the one atomic writer every module uses.

read_text   the text of a regular file, or `missing` when there is none;
            never more than `limit` bytes (pmxcfs's own limit, 1 MiB, by
            default), never a device or a FIFO, UTF-8 or an error (with
            errors="replace": bytes that are not UTF-8 replaced);
write_atomic  write a temporary file beside the target and rename it over
            the target, so a reader sees the old file or the new one, never
            a part; the temporary file is removed when anything fails.

Failures come back as the caller's exception class, naming the file.
"""

import os
import stat

from ..model.errors import ConfigError

MAX_SIZE = 1024 * 1024          # pmxcfs refuses larger files


def failure(error, path, reason):
    """An exception of class `error` saying that `path` failed for `reason`."""
    if issubclass(error, ConfigError):
        return error(path, None, None, reason)
    return error(f"{path}: {reason}")


def read_text(path, missing=None, limit=MAX_SIZE, error=ConfigError, errors="strict"):
    """The text of `path`, or `missing` if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return missing
    except OSError as e:
        raise failure(error, path, f"cannot read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise failure(error, path, "cannot read: not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise failure(error, path, f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise failure(error, path, f"larger than {limit} bytes: not read")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise failure(error, path, f"not UTF-8 text (byte {e.start})") from None


def temporary(path):
    """The hidden temporary name write_atomic uses beside `path`."""
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


def write_atomic(path, text, mode=0o644, fsync=True, tmp=None, parents=False):
    """Publish `text` as `path` (tmp + rename); OSError on failure, with the
    temporary file removed and the target untouched.  `parents`: create the
    missing directories first."""
    data = text.encode("utf-8")
    tmp = tmp or temporary(path)
    if parents:
        os.makedirs(path.parent, exist_ok=True)
    fd = None
    try:
        while fd is None:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:         # left by a writer with our pid before a reboot
                os.unlink(tmp)
        os.fchmod(fd, mode)             # exactly `mode`, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(tmp, path)
    except OSError:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def executable(path):
    return os.access(path, os.X_OK)


def remove(path):
    """Delete a file; True if it was there."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
