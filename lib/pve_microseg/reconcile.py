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
    stamp: int = 0                  # state.config_stamp() taken before reading

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
    stamp = state.config_stamp(paths)
    if not node.pmxcfs_mounted(paths):
        source = read_cached(paths, f"{paths.pve_dir} is not mounted (pmxcfs not running yet?)")
    else:
        try:
            source = read_live(paths)
        except ConfigError as e:
            if not fallback_on_error:
                raise
            source = read_cached(paths, f"invalid configuration: {e}")
    source.stamp = stamp
    return source


@dataclass
class Plan:
    """What a full apply changes on this node.

    Every configured bridge gets its rules, whether or not it exists on this
    node yet: rules for an absent bridge are inert, and a bridge created later
    (an SDN apply, a zone extended to this node) is protected from its first
    frame.  The ruleset is the same on every node.
    """

    desired: tuple                  # ManagedBridge, all configured
    added: list
    removed: list
    changed: list                   # (old, new)
    unchanged: list
    absent: list                    # configured, but no such bridge on this node (yet)
    transaction: dict
    stamp: int = 0

    @property
    def changes(self):
        return bool(self.added or self.removed or self.changed)


def _diff(current, desired):
    want = {b.name: b for b in desired}
    added = sorted(n for n in want if n not in current)
    removed = sorted(n for n in current if n not in want)
    changed = [(current[n], want[n]) for n in sorted(want)
               if n in current and current[n] != want[n]]
    unchanged = sorted(n for n in want if n in current and current[n] == want[n])
    return added, removed, changed, unchanged


def plan(paths, source):
    present = node.bridges_present(paths)
    desired = tuple(sorted(source.bridges, key=lambda b: b.name))
    added, removed, changed, unchanged = _diff(state.applied(paths), desired)
    return Plan(desired=desired, added=added, removed=removed, changed=changed,
                unchanged=unchanged, absent=sorted(b.name for b in desired if b.name not in present),
                transaction=ruleset.full(desired), stamp=source.stamp)


def apply_plan(paths, p, nft):
    """Replace our table with the plan's (atomic), then record it."""
    with state.locked(paths):
        nft.run(p.transaction)
        state.record(paths, p.desired, p.stamp)


def sync(paths, source, nft_factory):
    """Load what changed since the last decision, in one transaction.

    Returns (loaded names, removed names).  Bridges whose model did not
    change keep their rules untouched (and their counters).
    """
    current = state.applied(paths)
    added, removed, changed, _ = _diff(current, source.bridges)
    load = [source.bridge(n) for n in added] + [new for _, new in changed]
    if load or removed:
        nft_factory().run(ruleset.update(load=load, remove=removed))
    state.record(paths, source.bridges, source.stamp)
    return sorted(b.name for b in load), removed


def hook_up(paths, iface, nft_factory, log):
    """if-up.d: bring the rules to the configuration, then note IFACE's fate.

    The shell wrapper only gets here when IFACE has no decision yet or a
    configuration file changed since; one run then settles every bridge.
    """
    source = read(paths, fallback_on_error=True)
    for w in source.warnings:
        log.warning(w)
    with state.locked(paths):
        loaded, removed = sync(paths, source, nft_factory)
        if source.bridge(iface) is None:
            state.mark_ignored(paths, iface, source.stamp)
    for name in loaded:
        log.info(f"{name}: L2 isolation rules loaded ({source.origin} configuration)")
    for name in removed:
        log.info(f"{name}: no longer managed, L2 isolation rules removed")


def hook_down(paths, iface, nft_factory, log):
    """if-down.d: remove the rules of IFACE if any are loaded."""
    with state.locked(paths):
        if iface in state.applied(paths):
            nft_factory().run(ruleset.remove_bridge(iface))
            state.unmark_applied(paths, iface)
            log.info(f"{iface}: down, L2 isolation rules removed")


def teardown(paths, nft):
    """Remove our table and forget every decision (package removal)."""
    import shutil
    with state.locked(paths):
        nft.run(ruleset.delete_table())
        for d in (paths.applied_dir, paths.ignored_dir):
            shutil.rmtree(d, ignore_errors=True)
