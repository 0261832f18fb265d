"""Facts about this node read from the system, and its bridge ports (edges)."""

import os
import re

from ..model.errors import ConfigError
from ..parse import dpkg
from . import files

DPKG_STATUS_MAX = 64 * 1024 * 1024      # a Proxmox node's is a few MiB


def local_node(paths, environ=None):
    """This node's name: PVE_MICROSEG_NODE, else the /etc/pve/local link, else the host name."""
    name = (environ or {}).get("PVE_MICROSEG_NODE")
    if name:
        return name
    try:
        return os.path.basename(os.readlink(paths.local_node_link))
    except OSError:
        return os.uname().nodename.split(".")[0]


def is_root():
    return os.geteuid() == 0


def interfaces(paths):
    """Names of every network interface of this node."""
    try:
        return sorted(e.name for e in paths.sys_class_net.iterdir())
    except FileNotFoundError:
        return []


def bridges_present(paths):
    """Names of the Linux bridges that exist on this node."""
    try:
        entries = list(paths.sys_class_net.iterdir())
    except FileNotFoundError:
        return frozenset()
    return frozenset(e.name for e in entries if (e / "bridge").is_dir())


def bridge_ports(paths, bridge):
    """The ports enslaved to a bridge of this node (none if it does not exist)."""
    try:
        return sorted(e.name for e in (paths.sys_class_net / bridge / "brif").iterdir())
    except OSError:
        return []


def installed_version(paths, package):
    """The version of `package` installed on this node, from dpkg's status
    file; None when it is not installed; ConfigError when the file cannot
    be read."""
    text = files.read_text(paths.dpkg_status, limit=DPKG_STATUS_MAX, errors="replace", follow_links=True)
    if text is None:
        raise ConfigError(paths.dpkg_status, None, None, "not found")
    return dpkg.installed_version(text, package)


def pmxcfs_mounted(paths):
    """True when /etc/pve is the live cluster file system (not an empty dir)."""
    return paths.pmxcfs_marker.exists()


def bridge_of_port(paths, port):
    """The bridge a port is enslaved to, or None."""
    try:
        return os.path.basename(os.readlink(paths.sys_class_net / port / "brport" / "bridge"))
    except OSError:
        return None


def isolate_port(paths, port):
    """Set a bridge port's `isolated` flag (what `bridge link set ... isolated on` does)."""
    with open(paths.sys_class_net / port / "brport" / "isolated", "w") as f:
        f.write("1\n")


IFF_UP, IFF_PROMISC, IFF_ALLMULTI = 0x1, 0x100, 0x200


def set_link_down(paths, port):
    """Take an interface down (what `ip link set <port> down` does): through
    its sysfs `flags`, which the kernel applies with dev_change_flags.
    Returns False when it was down already.

    The flags read include PROMISC and ALLMULTI whenever the bridge holds
    the port in those modes; written back they would become the port's own
    (an extra promiscuity reference, seen on kernel 6.18 here), so they are
    left out: a tap QEMU created has none of its own."""
    path = paths.sys_class_net / port / "flags"
    flags = int(path.read_text().strip(), 16)
    if not flags & IFF_UP:
        return False
    with open(path, "w") as f:
        f.write(f"{flags & ~(IFF_UP | IFF_PROMISC | IFF_ALLMULTI):#x}\n")
    return True


_SCRIPTS = re.compile(r"^\s*addon_scripts_support\s*=\s*(\S+)\s*$", re.M)


def ifupdown2_runs_scripts(paths):
    """Whether ifupdown2 runs /etc/network/if-up.d scripts.

    Returns (True|False|None, explanation); None when ifupdown2's config is
    absent (ifupdown2 not installed) or unreadable.  The file Debian ships
    sets 1; a file without the line means 0, ifupdown2's own default
    (ifupdown2 3.0.0, ifupdown/ifupdownmain.py and scheduler.py:
    `config.get('addon_scripts_support', '0') == '1'`).
    """
    try:
        text = files.read_text(paths.ifupdown2_conf, follow_links=True)
    except ConfigError as e:
        return None, str(e)
    if text is None:
        return None, f"{paths.ifupdown2_conf} not found: is ifupdown2 installed?"
    matches = _SCRIPTS.findall(text)
    value = matches[-1] if matches else None
    if value == "1":
        return True, f"{paths.ifupdown2_conf}: addon_scripts_support=1"
    setting = f"addon_scripts_support={value}" if value is not None else \
        "addon_scripts_support not set (ifupdown2's default: 0)"
    return False, (f"{paths.ifupdown2_conf}: {setting}: ifupdown2 does not "
                   "run /etc/network/if-up.d hooks, so managed bridges are NOT protected on "
                   "ifup/ifreload/SDN apply. Set addon_scripts_support=1 there (pve-microseg "
                   "never edits it), or run 'pve-microseg apply' after every network change.")
