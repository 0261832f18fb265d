"""Identifiers as Proxmox spells them, validated in this one place (pure).

VMIDs, NIC keys, interface (bridge, guest port) names and node names come
from the hookscript's arguments and environment, the CLI, file names,
.vmlist, guest configs, microseg.yaml and the IPAM.  Every one of them is
matched here, whole (fullmatch: `$` would also match before a final
newline) and in ASCII only (`\\d`, str.isdigit() and int() also take other
scripts' digits: int("١٠١") == 101), and returned in its one canonical form:
a VMID and a NIC index as int, a name as the string Proxmox uses.
"""

import re

from ..model.errors import ConfigError

VMID_MIN, VMID_MAX = 100, 999999999
MAX_NICS = 32                  # net0..net31: qemu-server $MAX_NETS, pve-container $MAX_LXC_NETWORKS

# pve-common's `pve-vmid` format: ^[1-9][0-9]{2,8}$ (PVE/JSONSchema.pm pve_verify_vmid)
_VMID = re.compile(r"[1-9][0-9]{2,8}", re.ASCII)
_LEADING_ZEROS = re.compile(r"0+([1-9][0-9]{2,8})", re.ASCII)
_INDEX = r"(?:[0-9]|[12][0-9]|3[01])"                  # 0..31, no leading zero
_NIC_KEY = re.compile(rf"(net|ipconfig)({_INDEX})", re.ASCII)
_NIC_LIKE = re.compile(r"(net|ipconfig)([0-9]+)", re.ASCII)
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}", re.ASCII)
_GUEST_PORT = re.compile(r"(tap|veth|fwpr|fwbr|fwln)[0-9]", re.ASCII)
# the ports Proxmox plugs into a bridge for a guest NIC (pve-common PVE/Network.pm)
_PORT = re.compile(rf"(?:tap(?P<tap>{_VMID.pattern})i|veth(?P<veth>{_VMID.pattern})i|"
                   rf"fwpr(?P<fwpr>{_VMID.pattern})p)(?P<nic>{_INDEX})", re.ASCII)
# a node name as pve-common's `pve-node` format allows it (a host name label)
_NODE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)

VMID_FORM = "a VMID (100-999999999, ASCII digits, no leading zero)"


# ---------------------------------------------------------------- VMIDs

def vmid(text):
    """A VMID as Proxmox writes it (str or int) -> int; ValueError with the reason."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, str) and _VMID.fullmatch(text):
        return int(text)
    m = _LEADING_ZEROS.fullmatch(text) if isinstance(text, str) else None
    hint = f" (write {m.group(1)})" if m else ""
    raise ValueError(f"{text!r} is not {VMID_FORM}{hint}")


def is_vmid(text):
    try:
        vmid(text)
        return True
    except ValueError:
        return False


def vmid_or_none(text):
    try:
        return vmid(text)
    except ValueError:
        return None


# ---------------------------------------------------------------- NIC keys

def nic_key(key):
    """('net'|'ipconfig', index) of a NIC key net0..net31 / ipconfig0..ipconfig31,
    or None for any other key (net32, net01, 'net0\\n', net١ are not NICs to Proxmox)."""
    m = _NIC_KEY.fullmatch(key) if isinstance(key, str) else None
    return (m.group(1), int(m.group(2))) if m else None


def looks_like_nic_key(key):
    """net<digits> / ipconfig<digits> that is not a NIC key (net32, net01): Proxmox ignores it."""
    return isinstance(key, str) and _NIC_LIKE.fullmatch(key) is not None and nic_key(key) is None


def nic_index(key):
    """The index of `net<N>` (0..31), or None."""
    k = nic_key(key)
    return k[1] if k and k[0] == "net" else None


# ---------------------------------------------------------------- interface and node names

def is_ifname(name):
    """Whether `name` is a valid interface name (never a path: no '/', not '.' or '..')."""
    return isinstance(name, str) and _IFNAME.fullmatch(name) is not None and name not in (".", "..")


def is_node(name):
    """Whether `name` is a valid Proxmox node name (a host name label)."""
    return isinstance(name, str) and _NODE.fullmatch(name) is not None


def guest_port(name):
    """(vmid, NIC index) of a guest port name as Proxmox makes it (tap<vmid>i<n>,
    veth<vmid>i<n>, fwpr<vmid>p<n>), or None for any other interface."""
    m = _PORT.fullmatch(name) if isinstance(name, str) else None
    if not m:
        return None
    return int(m.group("tap") or m.group("veth") or m.group("fwpr")), int(m.group("nic"))


def check_ifname(name, path, line, field_name):
    """A bridge name as the kernel allows it, and not a guest port: `name`, or ConfigError."""
    if not is_ifname(name):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is not a valid interface name (1-15 characters "
                          "of letters, digits, '_', '.', '-')")
    if _GUEST_PORT.match(name):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is a guest port name (tap/veth/fwpr/fwbr/fwln), "
                          "not a bridge guests are plugged into")
    return name
