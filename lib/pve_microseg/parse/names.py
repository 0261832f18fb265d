"""Identifiers as Proxmox spells them: interface (bridge) names (pure)."""

import re

from ..model.errors import ConfigError

_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_GUEST_PORT = re.compile(r"^(tap|veth|fwpr|fwbr|fwln)\d")


def check_ifname(name, path, line, field_name):
    """A bridge name as the kernel allows it, and not a guest port: `name`, or ConfigError."""
    if not isinstance(name, str) or not _IFNAME.match(name) or name in (".", ".."):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is not a valid interface name (1-15 characters "
                          "of letters, digits, '_', '.', '-')")
    if _GUEST_PORT.match(name):
        raise ConfigError(path, line, field_name,
                          f"{name!r} is a guest port name (tap/veth/fwpr/fwbr/fwln), "
                          "not a bridge guests are plugged into")
    return name
