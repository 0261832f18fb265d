"""Proxmox storages that can hold hookscripts (`/etc/pve/storage.cfg`; pure).

A hookscript is a `snippets` volume `<storage>:snippets/<file>`: the file
`<storage path>/snippets/<file>` of a path-based storage (pve-storage
src/PVE/Storage/Plugin.pm, parse_volname and get_subdir).  The `local`
storage exists even when storage.cfg does not name it (`/var/lib/vz`).  A
storage without `shared 1` is local to each node, so a hookscript there must
be installed on every node.
"""

from ..model.errors import ConfigError
from ..model.storage import Storage
from .sectionconfig import parse_section_config

SHARED_TYPES = ("nfs", "cifs", "cephfs", "glusterfs", "pbs")
LOCAL = Storage("local", "dir", "/var/lib/vz", ("snippets",))


def parse(text, path="storage.cfg"):
    """{storage id: Storage}, `local` included."""
    out = {"local": LOCAL}
    for sec in parse_section_config(text, path):
        props = sec.props
        out[sec.id] = Storage(
            id=sec.id, type=sec.type, path=props.get("path"),
            content=tuple(c.strip() for c in props.get("content", "").split(",") if c.strip()),
            shared=props.get("shared") == "1" or sec.type in SHARED_TYPES,
            nodes=tuple(n.strip() for n in props.get("nodes", "").split(",") if n.strip()))
    return out


def snippet_path(storages, volume, path="storage.cfg"):
    """`local:snippets/x.sh` -> <storage path>/snippets/x.sh; an absolute path as is."""
    if volume.startswith("/"):
        return volume
    sid, _, rest = volume.partition(":")
    kind, _, name = rest.partition("/")
    if kind != "snippets" or not name or "/" in name:
        raise ConfigError(path, None, volume, "expected <storage>:snippets/<file>")
    st = storages.get(sid)
    if st is None:
        raise ConfigError(path, None, sid, f"no storage {sid!r} (volume {volume})")
    if not st.path:
        raise ConfigError(path, None, sid,
                          f"storage {sid!r} ({st.type}) is not path-based: it cannot hold snippets")
    return f"{st.path.rstrip('/')}/snippets/{name}"
