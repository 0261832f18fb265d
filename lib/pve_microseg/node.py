"""Facts about this node read from the system (edges, small and cheap)."""

import re


def bridges_present(paths):
    """Names of the Linux bridges that exist on this node."""
    try:
        entries = list(paths.sys_class_net.iterdir())
    except FileNotFoundError:
        return frozenset()
    return frozenset(e.name for e in entries if (e / "bridge").is_dir())


def pmxcfs_mounted(paths):
    """True when /etc/pve is the live cluster file system (not an empty dir)."""
    return paths.pmxcfs_marker.exists()


_SCRIPTS = re.compile(r"^\s*addon_scripts_support\s*=\s*(\S+)\s*$", re.M)


def ifupdown2_runs_scripts(paths):
    """Whether ifupdown2 runs /etc/network/if-up.d scripts.

    Returns (True|False|None, explanation); None when ifupdown2's config is
    absent (ifupdown2 not installed).  Debian's default is 1.
    """
    try:
        text = paths.ifupdown2_conf.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, f"{paths.ifupdown2_conf} not found: is ifupdown2 installed?"
    matches = _SCRIPTS.findall(text)
    if not matches:
        return True, f"{paths.ifupdown2_conf}: addon_scripts_support not set (default 1)"
    value = matches[-1]
    if value == "1":
        return True, f"{paths.ifupdown2_conf}: addon_scripts_support=1"
    return False, (f"{paths.ifupdown2_conf}: addon_scripts_support={value}: ifupdown2 does not "
                   "run /etc/network/if-up.d hooks, so managed bridges are NOT protected on "
                   "ifup/ifreload/SDN apply. Set addon_scripts_support=1 there (pve-microseg "
                   "never edits it), or run 'pve-microseg apply' after every network change.")
