"""Bring this node's nftables state to the desired one (orchestration).

read inputs (config, SDN, cache, sysfs) -> pure decisions (ruleset.py) ->
one libnftables transaction -> record what is applied.
"""

from dataclasses import dataclass, field

from . import config, node, ruleset, sdn, state
from .errors import ConfigError


@dataclass
class Source:
    """The managed bridges as read, and where from."""

    bridges: tuple
    origin: str                     # "pmxcfs" or "cache"
    warnings: list = field(default_factory=list)

    def bridge(self, name):
        return next((b for b in self.bridges if b.name == name), None)


def read_live(paths):
    """Config from /etc/pve; ConfigError if invalid.  Refreshes the cache."""
    cfg = config.load(paths, sdn.load(paths))
    state.save_cache(paths, cfg.bridges, str(paths.config))
    return Source(bridges=cfg.bridges, origin="pmxcfs", warnings=list(cfg.warnings))


def read_cached(paths, why):
    bridges, written = state.load_cache(paths)
    if bridges is None:
        return Source(bridges=(), origin="cache", warnings=[
            f"{why}; no usable cached configuration in {paths.cache} ({written or 'absent'}): "
            "no bridge is protected until 'pve-microseg apply' runs with /etc/pve available"])
    return Source(bridges=bridges, origin="cache", warnings=[
        f"{why}; using the cached configuration from {paths.cache} (written {written})"])


def read(paths, fallback_on_error=False):
    """The managed bridges: live when pmxcfs is mounted, else the cache.

    With fallback_on_error (the ifupdown hooks), an invalid configuration
    falls back to the last good one instead of leaving bridges open; the
    error is reported as a warning.  Otherwise ConfigError propagates.
    """
    if not node.pmxcfs_mounted(paths):
        return read_cached(paths, f"{paths.pve_dir} is not mounted (pmxcfs not running yet?)")
    try:
        return read_live(paths)
    except ConfigError as e:
        if not fallback_on_error:
            raise
        return read_cached(paths, f"invalid configuration: {e}")


@dataclass
class Plan:
    """What a full apply changes on this node."""

    desired: tuple                  # ManagedBridge present on this node, configured
    added: list
    removed: list
    changed: list                   # (old, new)
    unchanged: list
    absent: list                    # configured, but no such bridge on this node
    transaction: dict

    @property
    def changes(self):
        return bool(self.added or self.removed or self.changed)


def plan(paths, source):
    present = node.bridges_present(paths)
    desired = tuple(b for b in source.bridges if b.name in present)
    absent = sorted(b.name for b in source.bridges if b.name not in present)
    current = state.applied(paths)
    want = {b.name: b for b in desired}
    added = sorted(n for n in want if n not in current)
    removed = sorted(n for n in current if n not in want)
    changed = [(current[n], want[n]) for n in sorted(want)
               if n in current and current[n] != want[n]]
    unchanged = sorted(n for n in want if n in current and current[n] == want[n])
    return Plan(desired=desired, added=added, removed=removed, changed=changed,
                unchanged=unchanged, absent=absent, transaction=ruleset.full(desired))


def apply_plan(paths, p, nft):
    """Replace our table with the plan's (atomic), then record it."""
    with state.locked(paths):
        nft.run(p.transaction)
        state.set_applied(paths, p.desired)


def hook_up(paths, iface, nft_factory, log):
    """if-up.d: load the rules of IFACE if it is managed, drop stale ones."""
    source = read(paths, fallback_on_error=True)
    for w in source.warnings:
        log.warning(w)
    bridge = source.bridge(iface)
    with state.locked(paths):
        if bridge is not None:
            nft_factory().run(ruleset.load_bridge(bridge))
            state.mark_applied(paths, bridge)
            log.info(f"{iface}: L2 isolation rules loaded ({source.origin} configuration)")
        elif iface in state.applied(paths):
            nft_factory().run(ruleset.remove_bridge(iface))
            state.unmark_applied(paths, iface)
            log.info(f"{iface}: no longer managed, L2 isolation rules removed")


def hook_down(paths, iface, nft_factory, log):
    """if-down.d: remove the rules of IFACE if any are loaded."""
    with state.locked(paths):
        if iface in state.applied(paths):
            nft_factory().run(ruleset.remove_bridge(iface))
            state.unmark_applied(paths, iface)
            log.info(f"{iface}: down, L2 isolation rules removed")
