"""Identifiers as Proxmox spells them: interface (bridge) names (pure)."""

import re

from ..model.errors import ConfigError

# whole-string matches (fullmatch): `$` would also match before a final newline
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}", re.ASCII)
_GUEST_PORT = re.compile(r"^(tap|veth|fwpr|fwbr|fwln)\d")
# a node name as pve-common's `pve-node` format allows it (a host name label)
_NODE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)


def is_ifname(name):
    """Whether `name` is a valid interface name (never a path: no '/', not '.' or '..')."""
    return isinstance(name, str) and _IFNAME.fullmatch(name) is not None and name not in (".", "..")


def is_node(name):
    """Whether `name` is a valid Proxmox node name (a host name label)."""
    return isinstance(name, str) and _NODE.fullmatch(name) is not None


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
