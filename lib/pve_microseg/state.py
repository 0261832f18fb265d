"""Local state of this node (edges).

* last-good cache (`/var/lib/pve-microseg/last-good.json`): the last valid
  configuration read from /etc/pve.  At boot the if-up.d hook runs before
  pmxcfs mounts /etc/pve; the cache lets managed bridges come up protected.
* applied markers (`/run/pve-microseg/bridges/<bridge>`): which bridges have
  rules loaded, with the model they were loaded from.  On tmpfs, so they
  vanish with the kernel's ruleset at reboot.  The if-down.d hook checks for
  the marker in shell before starting Python.
"""

import fcntl
import json
import os
import time
from contextlib import contextmanager

from .model import ManagedBridge


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------- last good

def _cache_doc(bridges, source):
    return {"source": source, "bridges": [b.to_json() for b in bridges]}


def save_cache(paths, bridges, source):
    """Store the configuration if it changed; returns True if written."""
    doc = _cache_doc(bridges, source)
    try:
        old = json.loads(paths.cache.read_text(encoding="utf-8"))
        old.pop("written", None)
        if old == doc:
            return False
    except (OSError, ValueError):
        pass
    doc["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_atomic(paths.cache, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return True


def load_cache(paths):
    """(bridges, written) from the cache, or (None, None) if there is none."""
    try:
        doc = json.loads(paths.cache.read_text(encoding="utf-8"))
        return tuple(ManagedBridge.from_json(b) for b in doc["bridges"]), doc.get("written", "?")
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError):
        return None, "unreadable"


# ------------------------------------------------------------- applied

def applied(paths):
    """{bridge name: ManagedBridge or None} of bridges with rules loaded."""
    out = {}
    try:
        entries = list(paths.applied_dir.iterdir())
    except FileNotFoundError:
        return out
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            out[e.name] = ManagedBridge.from_json(json.loads(e.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            out[e.name] = None
    return out


def mark_applied(paths, bridge):
    _write_atomic(paths.applied_dir / bridge.name, json.dumps(bridge.to_json(), sort_keys=True) + "\n")


def unmark_applied(paths, name):
    try:
        (paths.applied_dir / name).unlink()
    except FileNotFoundError:
        pass


def set_applied(paths, bridges):
    names = {b.name for b in bridges}
    for name in applied(paths):
        if name not in names:
            unmark_applied(paths, name)
    for b in bridges:
        mark_applied(paths, b)


@contextmanager
def locked(paths):
    """Serialise our transactions and state updates on this node."""
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
