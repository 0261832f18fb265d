"""Proxmox storages that can hold hookscripts (`/etc/pve/storage.cfg`), pure reads.

A hookscript is a `snippets` volume `<storage>:snippets/<file>`: the file
`<storage path>/snippets/<file>` of a path-based storage (reference e).  The
`local` storage exists even when storage.cfg does not name it
(`/var/lib/vz`).  A storage without `shared 1` is local to each node, so a
hookscript there must be installed on every node.
"""

import os
from dataclasses import dataclass

from . import sdn
from .errors import ConfigError

SHARED_TYPES = ("nfs", "cifs", "cephfs", "glusterfs", "pbs")


@dataclass(frozen=True)
class Storage:
    id: str
    type: str
    path: str = None            # None: not path-based (lvm, zfs, rbd, ...)
    content: tuple = ()
    shared: bool = False
    nodes: tuple = ()           # empty: every node


def load(paths):
    """{storage id: Storage}, `local` included."""
    try:
        text = paths.storage_cfg.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as e:
        raise ConfigError(paths.storage_cfg, None, None, f"cannot read: {e.strerror}") from None
    out = {"local": Storage("local", "dir", "/var/lib/vz", ("snippets",))}
    for stype, sid, _line, props, _lines in sdn.parse_section_config(text, paths.storage_cfg):
        out[sid] = Storage(
            id=sid, type=stype, path=props.get("path"),
            content=tuple(c.strip() for c in props.get("content", "").split(",") if c.strip()),
            shared=props.get("shared") == "1" or stype in SHARED_TYPES,
            nodes=tuple(n.strip() for n in props.get("nodes", "").split(",") if n.strip()))
    return out


def snippet_path(paths, volume):
    """`local:snippets/x.sh` -> <storage path>/snippets/x.sh; an absolute path as is."""
    if volume.startswith("/"):
        return volume
    sid, _, rest = volume.partition(":")
    kind, _, name = rest.partition("/")
    if kind != "snippets" or not name or "/" in name:
        raise ConfigError(paths.storage_cfg, None, volume, "expected <storage>:snippets/<file>")
    st = load(paths).get(sid)
    if st is None:
        raise ConfigError(paths.storage_cfg, None, sid, f"no storage {sid!r} (volume {volume})")
    if not st.path:
        raise ConfigError(paths.storage_cfg, None, sid,
                          f"storage {sid!r} ({st.type}) is not path-based: it cannot hold snippets")
    return os.path.join(st.path, "snippets", name)
