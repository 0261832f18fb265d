"""pmxcfs's status files `/etc/pve/.vmlist` and `/etc/pve/.members` (pure).

    .vmlist:  {"version": N, "ids": {"101": {"node": "pve1", "type": "qemu", "version": 3}}}
    .members: {"nodename": "pve1", "version": N, "cluster": {...},
               "nodelist": {"pve1": {"id": 1, "online": 1, "ip": "192.0.2.11"}}}
"""

import ipaddress
import json

from ..model.errors import ConfigError
from ..model.guest import Guest
from . import names


def parse_vmlist(text, path=".vmlist"):
    """{vmid: Guest}; entries that are not a qemu/lxc guest (a VMID and a node
    name as Proxmox writes them) are skipped."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, None, None, f"cannot read: {e}") from None
    ids = data.get("ids") if isinstance(data, dict) else None
    out = {}
    for vmid, info in (ids if isinstance(ids, dict) else {}).items():
        vmid = names.vmid_or_none(vmid)
        if vmid is not None and isinstance(info, dict) and info.get("type") in ("qemu", "lxc") \
                and names.is_node(info.get("node")):
            out[vmid] = Guest(vmid, info["node"], info["type"])
    return out


def _ip_or_none(value):
    try:
        return str(ipaddress.ip_address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_members(text):
    """{node: ip or None}; {} when the text is not what pmxcfs writes.  Only
    node names as Proxmox writes them (they name ssh's known_hosts file and
    the host to ask) and addresses that are addresses (else None: ask by name)."""
    try:
        data = json.loads(text)
        return {n: _ip_or_none((info or {}).get("ip")) for n, info in (data.get("nodelist") or {}).items()
                if names.is_node(n)}
    except (ValueError, AttributeError, TypeError):
        return {}


def parse_members_online(text):
    """{node: whether pmxcfs counts it online}, for the nodes whose entry says;
    {} when the text is not what pmxcfs writes."""
    try:
        data = json.loads(text)
        return {n: bool(info["online"]) for n, info in (data.get("nodelist") or {}).items()
                if isinstance(info, dict) and "online" in info}
    except (ValueError, AttributeError, TypeError):
        return {}
