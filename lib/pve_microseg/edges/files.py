"""Files: the one reader and the one atomic writer every module uses.

read_text   the text of a regular file, or `missing` when there is none;
            never more than `limit` bytes (pmxcfs's own limit, 1 MiB, by
            default), never through a symbolic link (unless told: root's own
            node-local files), never a device, FIFO, socket or directory,
            UTF-8 or an error (with errors="replace": bytes that are not
            UTF-8 replaced).  A refusal names the file and
            why, never what the file holds.
write_atomic  write a temporary file beside the target and rename it over
            the target, so a reader sees the old file or the new one, never
            a part.  The temporary file is created exclusively (O_EXCL), never
            through a link, with its mode set on the descriptor; it is
            removed when anything fails.
touch       an empty file (created like write_atomic's), with a given mtime.
private_dir a directory of ours: created, or made, mode 0700.
open_private  a file of ours to keep open (a lock), created 0600, never
            through a link.

Every file pve-microseg reads from /etc/pve can be planted by someone other
than root: a guest owner edits <vmid>.fw and the guest's config, a cluster
user with Sys.Modify other files.  pmxcfs itself has no symbolic links and
no devices, and refuses files over 1 MiB (MEMDB_MAX_FILE_SIZE,
proxmox/pve-cluster src/pmxcfs/memdb.h@7091d92e), so a file that is any of
these did not come from it and is refused.

Failures come back as the caller's exception class, naming the file.
"""

import errno
import os
import stat

from ..model.errors import ConfigError

MAX_SIZE = 1024 * 1024          # pmxcfs refuses larger files

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def failure(error, path, reason):
    """An exception of class `error` saying that `path` failed for `reason`."""
    if issubclass(error, ConfigError):
        return error(path, None, None, reason)
    return error(f"{path}: {reason}")


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(limit):
    if limit == MAX_SIZE:
        return f"{limit} bytes (1 MiB, the most pmxcfs holds in a file)"
    return f"{limit} bytes"


def read_text(path, missing=None, limit=MAX_SIZE, error=ConfigError, errors="strict", follow_links=False):
    """The text of `path`, or `missing` if it does not exist.  `follow_links`
    only for a node-local file root alone can plant (dpkg's status,
    ifupdown2.conf, the packaged hookscript): an administrator may link it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return missing
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise failure(error, path, "not read: a symbolic link (never followed)") from None
        raise failure(error, path, f"cannot read: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise failure(error, path, f"not read: {_kind(mode)}, not a regular file")
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
        raise failure(error, path, f"not read: larger than {_size(limit)}")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise failure(error, path, f"not UTF-8 text (byte {e.start})") from None


def temporary(path):
    """The hidden temporary name write_atomic uses beside `path`."""
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create(tmp, mode):
    """A new file `tmp`, opened for writing, exactly `mode` whatever the umask.
    Whatever is at that name already (left by a writer with our pid before a
    reboot, or planted) is unlinked, never opened: O_EXCL refuses to follow
    a link, and a link unlinked is only the link."""
    while True:
        try:
            fd = os.open(tmp, _CREATE, mode)
            break
        except FileExistsError:
            os.unlink(tmp)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_atomic(path, text, mode=0o600, fsync=True, tmp=None, parents=False):
    """Publish `text` (str, or bytes as they are) as `path` (tmp + rename);
    OSError on failure, with the temporary file removed and the target
    untouched.  `parents`: create the missing directories first."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    tmp = tmp or temporary(path)
    if parents:
        os.makedirs(path.parent, exist_ok=True)
    fd = None
    created = False
    try:
        fd = _create(tmp, mode)
        created = True
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
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def touch(path, mtime_ns, mode=0o600):
    """An empty file at `path` (replacing whatever is there, a link included)
    whose mtime is `mtime_ns`; OSError on failure."""
    write_atomic(path, "", mode=mode, fsync=False)
    set_mtime(path, mtime_ns)


def set_mtime(path, mtime_ns):
    """Set the mtime of `path` itself: a link is never followed."""
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def private_dir(path, mode=0o700):
    """Make `path` a directory only root can read (creating it and its missing
    parents), and tighten the mode of one an older version left open; OSError
    if it cannot be (not a directory, read-only, ...)."""
    try:
        os.mkdir(path, mode)
    except FileNotFoundError:
        os.makedirs(path.parent, exist_ok=True)
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def private_file(path, mode=0o600):
    """Tighten the mode of an existing file of ours (never through a link);
    False if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def open_private(path, mode=0o600):
    """A file of ours opened for appending (a lock file), created with `mode`;
    a link at `path` is refused (OSError ELOOP), never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                 | os.O_CLOEXEC, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", str(path))
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "a")


def executable(path):
    return os.access(path, os.X_OK)


def remove(path):
    """Delete a file; True if it was there."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
