"""A Proxmox storage (storage.cfg), as far as hookscripts need one."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Storage:
    id: str
    type: str
    path: str = None            # None: not path-based (lvm, zfs, rbd, ...)
    content: tuple = ()
    shared: bool = False
    nodes: tuple = ()           # empty: every node
