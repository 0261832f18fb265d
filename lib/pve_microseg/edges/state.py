"""Local state of this node (edges).

* last-good cache (`/var/lib/pve-microseg/last-good.json`): the last valid
  configuration read from /etc/pve.  At boot the if-up.d hook runs before
  pmxcfs mounts /etc/pve; the cache lets managed bridges come up protected.
* decision markers, on tmpfs so they vanish with the kernel's ruleset at
  reboot: `/run/pve-microseg/bridges/<bridge>` for a bridge whose rules are
  loaded (holding the model they were loaded from), `…/ignored/<bridge>` for
  a bridge found unmanaged.  Each marker's mtime is the configuration stamp
  (the newest mtime of the configuration files) it was decided on.  The
  if-up.d hook compares them in shell (`test -nt`) and starts Python only
  when a configuration file changed since: `ifreload -a` on a node with
  hundreds of VNets then costs one Python run, not one per bridge.
* `/run/pve-microseg/drop-log`, present while the loaded drop chains log
  (`log: on`): the if-down.d hook, which reads no configuration, keeps the
  logging as loaded, and the if-up.d hook reloads when the setting changed.
* the parsed microseg.yaml (`/run/pve-microseg/microseg.yaml.json`), keyed
  by the file's exact text: the guest hookscript then does not load PyYAML.
* a hold (`/run/pve-microseg/held/<vmid>`, holding the reason): a backup
  start whose pre-start could not complete the sets leaves it for the
  post-start of the same start, which holds the VM's tap devices down
  (policy/onfailure.py); every pre-start drops an old one first.

Only flows that act write here; readers (`show`, `apply --dry-run`,
`status`) never do.

Everything here is root's alone: directories 0700, files 0600 (the cached
microseg.yaml is 0640 root:www-data on pmxcfs; a copy must not be readable
by more).  Files are written with files.write_atomic (exclusive temporary
file, never through a link); the modes an older version left (0755/0644)
are tightened by the next run that saves the last good configuration
(every `apply`, the package's postinst included).
"""

import fcntl
import json
import shutil
import time
from contextlib import contextmanager

from .. import __version__
from ..model.bridge import ManagedBridge
from ..parse import document_json
from . import files

FILE_MODE = 0o600


def _private_dirs(paths, directory):
    """Create `directory` (run_dir, state_dir or below) and every directory
    from that root down, each 0700."""
    for root in (paths.run_dir, paths.state_dir):
        if directory == root or root in directory.parents:
            files.private_dir(root)
            for part in directory.relative_to(root).parts:
                root = root / part
                files.private_dir(root)
            return
    files.private_dir(directory)


def _write_atomic(paths, path, text):
    _private_dirs(paths, path.parent)
    files.write_atomic(path, text, mode=FILE_MODE)


def tighten(paths):
    """Make the directories and the cached copies of microseg.yaml an older
    version left world-readable root's alone (OSError if it cannot)."""
    for d in (paths.state_dir, paths.run_dir):
        files.private_dir(d)
    for f in (paths.cache, _document_cache(paths)):
        files.private_file(f, FILE_MODE)


def _read_json(path):
    """The JSON in a file of ours, None if absent; ValueError if unreadable."""
    text = files.read_text(path, error=ValueError)
    return None if text is None else json.loads(text)


# ------------------------------------------------------------- last good

def _cache_doc(bridges, source, log=False):
    doc = {"source": source, "bridges": [b.to_json() for b in bridges]}
    if log:                         # only when on: a cache of `log: off` reads as before
        doc["log"] = True
    return doc


def save_cache(paths, bridges, source, log=False):
    """Store the configuration (the bridges, and whether drops are logged)
    if it changed; returns True if written.  Either way, the modes an older
    version left are tightened (OSError if that or the write fails)."""
    doc = _cache_doc(bridges, source, log)
    try:
        old = _read_json(paths.cache)
        if isinstance(old, dict):
            old.pop("written", None)
    except ValueError:
        old = None
    tighten(paths)
    if old == doc:
        return False
    doc["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_atomic(paths, paths.cache, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return True


def load_cache(paths):
    """(bridges, written, log) from the cache, or (None, None, False) if there is none."""
    try:
        doc = _read_json(paths.cache)
        if doc is None:
            return None, None, False
        return (tuple(ManagedBridge.from_json(b) for b in doc["bridges"]), doc.get("written", "?"),
                doc.get("log") is True)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, "unreadable", False


# ------------------------------------------------------ parsed microseg.yaml

def _document_cache(paths):
    return paths.run_dir / "microseg.yaml.json"


def cached_document(paths, text):
    """The parsed microseg.yaml saved for exactly this text, or None."""
    try:
        data = _read_json(_document_cache(paths))
        if data["version"] == __version__ and data["text"] == text:
            return document_json.from_json(data["document"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def save_document(paths, text, doc):
    """Keep the parsed form of `text` for the next guest start (OSError if it cannot)."""
    _write_atomic(paths, _document_cache(paths), json.dumps(
        {"version": __version__, "text": text, "document": document_json.to_json(doc)}))


# ------------------------------------------------------------- applied

def config_stamp(paths):
    """The newest mtime (ns) of the files a decision depends on; 0 if none.

    The same files the if-up.d hook compares with `test -nt`.
    """
    stamp = 0
    for path in paths.stamp_files:
        try:
            stamp = max(stamp, path.stat().st_mtime_ns)
        except OSError:
            pass
    return stamp


def _stamp(path, stamp):
    files.set_mtime(path, stamp)


def applied(paths):
    """{bridge name: ManagedBridge or None} of bridges with rules loaded."""
    out = {}
    try:
        entries = list(paths.applied_dir.iterdir())
    except OSError:          # absent, or not a directory we can read: nothing recorded
        return out
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            out[e.name] = ManagedBridge.from_json(_read_json(e))
        except (ValueError, KeyError, TypeError, AttributeError):
            out[e.name] = None
    return out


def _unlink(path):
    return files.remove(path)


def mark_applied(paths, bridge, stamp, current=None):
    """Record that `bridge`'s rules are loaded (rewrite only if the model changed)."""
    marker = paths.applied_dir / bridge.name
    if current is None or current != bridge or not marker.exists():
        _write_atomic(paths, marker, json.dumps(bridge.to_json(), sort_keys=True) + "\n")
    _stamp(marker, stamp)
    _unlink(paths.ignored_dir / bridge.name)


def unmark_applied(paths, name):
    _unlink(paths.applied_dir / name)


def mark_ignored(paths, name, stamp):
    """Record that bridge `name` was found unmanaged at this stamp."""
    marker = paths.ignored_dir / name
    _private_dirs(paths, marker.parent)
    files.touch(marker, stamp, mode=FILE_MODE)


def record(paths, bridges, stamp):
    """After a transaction: exactly `bridges` are loaded, decided at `stamp`."""
    current = applied(paths)
    names = {b.name for b in bridges}
    for name in current:
        if name not in names:
            unmark_applied(paths, name)
    for b in bridges:
        mark_applied(paths, b, stamp, current.get(b.name))
    try:
        for marker in paths.ignored_dir.iterdir():
            if marker.name not in names:
                _stamp(marker, stamp)
    except FileNotFoundError:
        pass


def loaded_bindings(paths):
    """[PortBinding as JSON] last loaded, or None if unknown."""
    try:
        data = _read_json(paths.bindings)
    except ValueError:
        return None
    return data if isinstance(data, list) else None


def forget(paths):
    """No rules, no bindings: forget every decision (the table is gone)."""
    for d in (paths.applied_dir, paths.ignored_dir):
        shutil.rmtree(d, ignore_errors=True)
    _unlink(paths.bindings)
    _unlink(paths.drop_log)


def record_log(paths, log):
    """After a transaction: the loaded drop chains log (`log: on`) or not."""
    if log:
        _write_atomic(paths, paths.drop_log, "on\n")
    else:
        _unlink(paths.drop_log)


def loaded_log(paths):
    """Whether the drop chains last loaded log (what an update must keep)."""
    try:
        return paths.drop_log.exists()
    except OSError:
        return False


def record_bindings(paths, port_bindings):
    """After a transaction: exactly these port bindings are loaded."""
    _write_atomic(paths, paths.bindings, json.dumps([b.to_json() for b in port_bindings], sort_keys=True) + "\n")


# ------------------------------------------------------------- holds

def hold(paths, vmid, reason):
    """Ask the coming post-start to hold the VM's tap devices down."""
    _write_atomic(paths, paths.held_dir / str(vmid), reason.rstrip("\n") + "\n")


def release_hold(paths, vmid):
    """Forget a hold (a new start decides afresh); True if there was one."""
    return _unlink(paths.held_dir / str(vmid))


def take_hold(paths, vmid):
    """The reason of a hold left by pre-start, removed; None if there is none."""
    path = paths.held_dir / str(vmid)
    try:
        text = files.read_text(path, error=ValueError)
    except ValueError:
        text = "(unreadable hold)"
    if text is None:
        return None
    _unlink(path)
    return text.strip() or "(no reason recorded)"


@contextmanager
def locked(paths):
    """Serialise our transactions and state updates on this node.

    Yields None, or why the lock could not be taken (the run directory is
    not a directory, is read-only, the disk is full): the caller goes on
    without it and says so.  Loading the rules matters more than
    serialising them; a lock we cannot take must not leave a bridge open."""
    try:
        files.private_dir(paths.run_dir)
        f = files.open_private(paths.lock, FILE_MODE)
    except OSError as e:
        yield f"cannot take the lock {paths.lock} ({e.strerror or e}): going on without it"
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield None
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
