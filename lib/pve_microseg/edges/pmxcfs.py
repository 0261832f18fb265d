"""Writing to /etc/pve the way Proxmox itself does.

* `cfs_lock(paths, lockid)`: the cluster-wide lock of `PVE::Cluster`: create
  the directory `/etc/pve/priv/lock/<lockid>`; while someone else holds it,
  send an unlock request (`utime(dir, 0, 0)`; pmxcfs honours it once the
  holder's lock is 120 s old) and retry, up to a timeout (10 s, as the API
  uses for firewall files).  Always removed when the work is done.
  ($cfs_lock, cfs_lock_file: proxmox/pve-cluster
  src/PVE/Cluster.pm@7091d92e594952dba65c1e57568b3d7cc244e960; the unlock
  request: cfs_plug_memdb_utimens and CFS_LOCK_TIMEOUT in src/pmxcfs/; the
  firewall lock ids: lock_vmfw_conf in proxmox/pve-firewall
  src/PVE/Firewall/Helpers.pm@6f1311f349daee920c7eedcc6e53d7fc5e2cfdbf.)
* `write_file(path, text)`: what `file_set_contents` does: write
  `<file>.tmp.<pid>` next to the target and rename it over the target, so
  readers on every node see the old file or the new one, never a part
  (proxmox/pve-common src/PVE/File.pm@f665029eac78022e81810ab2e44eace57ade13fb).

What an error number from /etc/pve means (proxmox/pve-cluster src/pmxcfs/
@00f25e13b847d5e1562da64773e06d35a3b7bf46):
* EACCES: without quorum, every change (write, create, mkdir, rename,
  unlink, utime) goes through dcdb_send_fuse_message (dcdb.c), which returns
  -EACCES when !cfs_is_quorate() (and when the message cannot be sent);
  getattr then shows files 0444 and directories 0555 (tree_entry_stat in
  cfs-plug-memdb.c).  But a user other than root gets EACCES from the
  kernel's permission check as well: pmxcfs shows everything as root:www-data,
  files 0640 and directories 0755, priv/ 0700 (cfs_fuse_getattr in
  pmxcfs.c).  So EACCES is "no quorum" only for root, and only when
  /etc/pve/.members does not say the cluster is quorate ("quorate": 1,
  cfs_create_memberlist_msg in status.c); for anyone else it is a plain
  permission error: pve-microseg needs root.
* EPERM: pmxcfs refuses a chmod/chown to other modes than 0600/0640 and
  other owners than root (cfs_fuse_chmod, cfs_fuse_chown); never quorum.
* EFBIG: a file above 1 MiB (MEMDB_MAX_FILE_SIZE in memdb.h).
Each comes back as ClusterFsError with a message an administrator can act on.
"""

import errno
import json
import os
import sys
import time
from contextlib import contextmanager

from ..model.errors import ClusterFsError
from . import files

LOCK_TIMEOUT = 10.0
MAX_FILE_SIZE = files.MAX_SIZE


@contextmanager
def cfs_lock(paths, lockid, timeout=LOCK_TIMEOUT, stderr=None, sleep=time.sleep, clock=time.monotonic):
    stderr = stderr or sys.stderr
    lock_dir = paths.lock_dir
    try:
        os.mkdir(lock_dir)
    except OSError:
        pass
    if not lock_dir.is_dir():
        raise ClusterFsError(f"cfs-lock '{lockid}' error: pve cluster filesystem not online "
                             f"({lock_dir} is not a directory)")
    path = lock_dir / lockid
    start = clock()
    told = None
    while True:
        try:
            os.mkdir(path)
            break
        except FileExistsError:
            pass
        except OSError as e:
            raise ClusterFsError(f"cfs-lock '{lockid}' error: {_why(path, e, paths.members)}") from None
        try:
            os.utime(path, (0, 0))              # ask pmxcfs to break a stale lock
        except OSError:
            pass
        waited = clock() - start
        if waited >= timeout:
            raise ClusterFsError(f"cfs-lock '{lockid}' error: got lock request timeout ({path} "
                                 f"held by another writer for more than {timeout:g} s; pmxcfs "
                                 "removes a stale lock 120 s after it was taken)")
        if told is None or clock() - told >= 1.0:
            print(f"trying to acquire cfs lock '{lockid}' ...", file=stderr, flush=True)
            told = clock()
        sleep(max(0.01, min(timeout - waited, 10) / 10))     # as PVE::Cluster: 1 s steps, shrinking
    try:
        yield path
    finally:
        try:
            os.rmdir(path)
        except OSError:
            pass


def read_file(path):
    """The file's text, or '' if it does not exist."""
    return files.read_text(path, missing="", error=ClusterFsError)


def write_file(path, text, mode=0o640):
    """Publish `text` as `path` atomically (tmp + rename); '' deletes the file."""
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_SIZE:
        raise ClusterFsError(f"{path}: the new file would be {len(data)} bytes; pmxcfs refuses files "
                             f"over {MAX_FILE_SIZE} bytes (1 MiB); left unchanged")
    try:
        if not data:
            files.remove(path)
            return
        os.makedirs(path.parent, exist_ok=True)
        # PVE::Tools::file_set_contents names it <file>.tmp.<pid>
        files.write_atomic(path, text, mode=mode, fsync=False,
                           tmp=path.with_name(f"{path.name}.tmp.{os.getpid()}"))
    except OSError as e:
        raise _fs_error(path, e) from None


def quorate(members):
    """Whether pmxcfs's .members file (`members`, a Path) says this node's
    cluster is quorate: True, False, or None when it does not say (no
    cluster, unreadable, not what pmxcfs writes)."""
    try:
        data = json.loads(files.read_text(members, missing="", error=ValueError) or "null")
        value = data["cluster"]["quorate"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return bool(value) if value in (0, 1) else None


def _members_of(path):
    """/etc/pve/.members for a path under /etc/pve: the nearest parent that has one."""
    for parent in path.parents:
        if (parent / ".members").exists():
            return parent / ".members"
    return None


def _why(path, e, members=None):
    """What an OSError on `path` under /etc/pve means (see the module's docstring)."""
    if e.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
        return f"{path}: permission denied: only root may change /etc/pve (run pve-microseg as root)"
    if e.errno == errno.EPERM:
        return f"{path}: operation not permitted by pmxcfs ({e.strerror})"
    if e.errno == errno.EACCES:
        members = members or _members_of(path)
        q = quorate(members) if members is not None else None
        if q is False:
            return f"no quorum! ({path}: permission denied; pmxcfs is read-only while this node is not quorate)"
        if q is True:
            return (f"{path}: permission denied by pmxcfs although the node is quorate "
                    "(is it a path pmxcfs does not allow?)")
        return f"{path}: permission denied (no quorum? pmxcfs is read-only while this node is not quorate)"
    if e.errno == errno.EFBIG:
        return f"{path}: file too large for pmxcfs (1 MiB limit)"
    return f"{path}: {e.strerror or e}"


def _fs_error(path, e):
    return ClusterFsError(f"{_why(path, e)}; left unchanged")
