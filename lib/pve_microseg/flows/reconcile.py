"""Bring this node's nftables table to the configuration: apply, show, the
ifupdown2 hooks, teardown.

read (pveconf, or the last-good cache) -> decide (policy/plan, ruleset) ->
one libnftables transaction -> record what is loaded (state).  Only a run
that loads rules writes state; `show` and `apply --dry-run` change nothing.
"""

import dataclasses
from dataclasses import dataclass, field

from ..edges import cluster, node, pveconf, state
from ..model.binding import PortBinding
from ..model.errors import ConfigError, ExitCode, MicrosegError, NftablesError
from ..policy import bindings, hookscripts, plan as planning, protection, ruleset
from .result import Result


@dataclass
class Source:
    """The managed bridges as read, and where from."""

    bridges: tuple
    origin: str                     # "pmxcfs" or "cache"
    warnings: list = field(default_factory=list)
    stamp: int = 0                  # state.config_stamp() taken before reading
    bindings: tuple = None          # PortBinding of this node's guests; None: not read (keep what is loaded)
    binding_warnings: tuple = ()
    log: bool = False               # `log: on`: the drop chains log (ruleset.skeleton)

    def bridge(self, name):
        return next((b for b in self.bridges if b.name == name), None)


def read_live(paths, here=None):
    """The configuration from /etc/pve; ConfigError if invalid.  With `here`
    (this node's name), also the port bindings of its guests."""
    cfg = pveconf.config(paths)
    source = Source(bridges=cfg.bridges, origin="pmxcfs", warnings=list(cfg.warnings), log=cfg.log)
    if here is None:
        return source
    try:
        source.bindings, source.binding_warnings = read_bindings(paths, cfg, here)
    except MicrosegError as e:
        # The guests cannot be read (.vmlist, the IPAM): that is no reason not
        # to load the bridges' rules; the ports keep the bindings last loaded.
        loaded = state.loaded_bindings(paths)
        source.bindings = None if loaded is None else tuple(PortBinding.from_json(b) for b in loaded)
        source.warnings.append(f"port bindings not rebuilt: {e}; the ports keep the bindings last loaded"
                               + ("" if loaded is not None else " (none: every guest port stays closed)"))
    return source


def read_bindings(paths, cfg, here):
    """(PortBinding of the guests of node `here` and of every guest whose port
    is on this node (a live migration's target), warnings), decided with the
    MACs and addresses every guest of the cluster claims."""
    local = {o[0] for o in map(bindings.port_owner, node.interfaces(paths)) if o}
    warnings, mine, everyone, complete = [], [], [], True
    for guest, gc, error in cluster.guest_configs(paths, cluster.guests(paths)):
        ours = guest.node == here or guest.vmid in local
        if gc is None:
            complete = False
            if ours:
                warnings.append(f"guest {guest.vmid}: {error}; its ports stay closed")
            continue
        everyone.append(gc)
        if ours:
            mine.append(gc)
    bound, why = bindings.node_bindings(mine, everyone, cfg, pveconf.ipam(paths), complete)
    return bound, tuple(warnings) + why


def binding_summary(source):
    """One warning for the port-binding problems (details: show, status)."""
    n = len(source.binding_warnings)
    if not n:
        return []
    return [f"port security: {n} problem(s) with guest ports of this node, e.g. {source.binding_warnings[0]} "
            "('pve-microseg show' lists them all)"]


def read_cached(paths, why):
    bridges, written, log = state.load_cache(paths)
    if bridges is None:
        return Source(bridges=(), origin="cache", warnings=[
            f"{why}; no usable cached configuration in {paths.cache} ({written or 'absent'}): "
            "no bridge is protected until 'pve-microseg apply' runs with /etc/pve available"])
    return Source(bridges=bridges, origin="cache", log=log, warnings=[
        f"{why}; using the cached configuration from {paths.cache} (written {written})"])


def read(paths, fallback_on_error=False, here=None):
    """The managed bridges: live when pmxcfs is mounted, else the cache.
    With `here`, the port bindings of that node's guests too (live only).

    With fallback_on_error (the ifupdown hooks), an invalid configuration
    falls back to the last good one instead of leaving bridges open; the
    error is reported as a warning.  Otherwise ConfigError propagates.
    """
    stamp = state.config_stamp(paths)
    if not node.pmxcfs_mounted(paths):
        source = read_cached(paths, f"{paths.pve_dir} is not mounted (pmxcfs not running yet?)")
    else:
        try:
            source = read_live(paths, here)
        except ConfigError as e:
            if not fallback_on_error:
                raise
            source = read_cached(paths, f"invalid configuration: {e}")
    source.stamp = stamp
    return source


def remember(paths, source):
    """After rules from a live configuration loaded: keep it as the last good
    one.  Returns warnings; a cache that cannot be written never undoes the
    rules that are loaded."""
    if source.origin != "pmxcfs":
        return []
    try:
        state.save_cache(paths, source.bridges, str(paths.config), source.log)
    except OSError as e:
        return [f"cannot save the last good configuration to {paths.cache}: {e.strerror}; the rules are "
                "loaded, but a boot before pmxcfs is up would find an older one"]
    return []


def environment_warnings(paths):
    """What makes the hooks not run on this node."""
    ok, why = node.ifupdown2_runs_scripts(paths)
    return [] if ok else [why]


def nd_target(nft_factory):
    """Whether this node's nftables can bind a neighbour advertisement's
    target to the port (ruleset.skeleton); False when it cannot be told."""
    if nft_factory is None:
        return False
    try:
        return nft_factory(dry_run=True).knows_nd_target()
    except MicrosegError:
        return False


def plan(paths, source, nd=False):
    return planning.plan(source.bridges, state.applied(paths), node.bridges_present(paths),
                         source.bindings or (), nd_target=nd, log=source.log)


def show(paths, environ=None, nft_factory=None):
    """The desired state of this node, and what is loaded; changes nothing.
    With nft_factory, the ruleset is the one this node's nftables would load."""
    source = read(paths, here=node.local_node(paths, environ))
    p = plan(paths, source, nd_target(nft_factory))
    present = {b.name for b in p.desired} - set(p.absent)
    loaded = state.applied(paths)
    data = {
        "config": str(paths.config),
        "origin": source.origin,
        "warnings": source.warnings,
        "bridges": [dict(b.to_json(), present=b.name in present, loaded=b.name in loaded)
                    for b in source.bridges],
        "bindings": [b.to_json() for b in source.bindings or ()],
        "binding-warnings": list(source.binding_warnings),
        "log": source.log,
        "nftables": p.transaction,
    }
    return Result(data, warnings=source.warnings + environment_warnings(paths))


def apply(paths, nft_factory, dry_run=False, environ=None):
    """Replace this node's table with the desired one in one transaction (with
    dry_run the kernel only checks it), then record what is loaded.  The
    port bindings of this node's guests are rebuilt from their configs."""
    source = read(paths, here=node.local_node(paths, environ))
    p = plan(paths, source, nd_target(nft_factory))
    warnings = source.warnings + environment_warnings(paths) + binding_summary(source)
    if dry_run:
        nft_factory(dry_run=True).run(p.transaction)
    else:
        with state.locked(paths) as no_lock:
            warnings += [no_lock] if no_lock else []
            nft_factory().run(p.transaction)
            warnings += _recorded(paths, p.desired, source.stamp, source.bindings or (), source.log)
        warnings += remember(paths, source)
    data = {
        "origin": source.origin,
        "warnings": source.warnings,
        "applied": not dry_run,
        "added": p.added,
        "removed": p.removed,
        "changed": [new.name for _, new in p.changed],
        "unchanged": p.unchanged,
        "not-on-this-node": p.absent,
        "bridges": [b.to_json() for b in p.desired],
        "changes": p.changes(),
        "bound-ports": sorted(b.port for b in source.bindings or ()),
        "binding-warnings": list(source.binding_warnings),
        "log": source.log,
    }
    return Result(data, warnings=warnings)


def _recorded(paths, bridges, stamp, port_bindings=None, log=None):
    """Record what a transaction loaded (log: whether its drop chains log;
    None: not reloaded); [warning] when it cannot be written.
    The rules are loaded either way: a record we cannot write only means the
    next run of the hook loads them again."""
    try:
        state.record(paths, bridges, stamp)
        if port_bindings is not None:
            state.record_bindings(paths, port_bindings)
        if log is not None:
            state.record_log(paths, log)
    except OSError as e:
        return [f"the rules are loaded, but what was loaded cannot be recorded in {paths.run_dir} "
                f"({e.strerror or e}): the next ifup/ifreload loads them again"]
    return []


def sync(paths, source, nft_factory):
    """Load what changed since the last decision, in one transaction.

    Returns (loaded names, removed names, warnings).  Bridges whose model
    did not change keep their rules untouched (and their counters); a
    changed `log:` refills the drop chains.
    """
    current = state.applied(paths)
    added, removed, changed, _ = planning.diff(current, source.bridges)
    load = [source.bridge(n) for n in added] + [new for _, new in changed]
    rebind = source.bindings is not None and \
        state.loaded_bindings(paths) != [b.to_json() for b in source.bindings]
    relog = state.loaded_log(paths) != source.log
    if load or removed or rebind or relog:
        nd = nd_target(nft_factory)
        try:
            nft_factory().run(ruleset.update(ruleset.vlan_parents(source.bridges), load=load, remove=removed,
                                             port_bindings=source.bindings if rebind else None, nd_target=nd,
                                             log=source.log))
        except NftablesError:
            # The table in the kernel is not what update() builds on (one
            # left by an older version, e.g. 0.3.0's interval bind sets):
            # replace it whole, every bridge and binding, in one transaction
            # (bindings unknown and none recorded: every guest port closed).
            bindings_now = source.bindings if source.bindings is not None else \
                tuple(PortBinding.from_json(b) for b in state.loaded_bindings(paths) or [])
            nft_factory().run(ruleset.full(source.bridges, bindings_now, nd_target=nd, log=source.log))
            load, rebind = list(source.bridges), True
            source = dataclasses.replace(source, bindings=tuple(bindings_now))
    warnings = _recorded(paths, source.bridges, source.stamp, source.bindings if rebind else None,
                         source.log if load or removed or rebind or relog else None)
    return sorted(b.name for b in load), removed, warnings


def hook_up(paths, iface, nft_factory, log, environ=None):
    """if-up.d: bring the rules to the configuration, then note IFACE's fate.

    The shell wrapper only gets here when IFACE has no decision yet or a
    configuration file changed since; one run then settles every bridge,
    and (from a live configuration) rebinds this node's guest ports.
    """
    source = read(paths, fallback_on_error=True, here=node.local_node(paths, environ))
    for w in source.warnings + binding_summary(source):
        log.warning(w)
    with state.locked(paths) as no_lock:
        if no_lock:
            log.warning(no_lock)
        loaded, removed, warnings = sync(paths, source, nft_factory)
        if source.bridge(iface) is None and not warnings:
            try:
                state.mark_ignored(paths, iface, source.stamp)
            except OSError:
                pass        # only costs a Python start at the next ifup
    for w in warnings + remember(paths, source):
        log.warning(w)
    for name in loaded:
        log.info(f"{name}: L2 isolation rules loaded ({source.origin} configuration)")
    for name in removed:
        log.info(f"{name}: no longer managed, L2 isolation rules removed")


def hook_down(paths, iface, nft_factory, log):
    """if-down.d: remove the rules of IFACE if any are loaded."""
    with state.locked(paths):
        applied = state.applied(paths)
        if iface in applied:
            # a bridge whose record cannot be read counts as plain (its VLAN bridges stay covered)
            rest = [n for n, b in applied.items() if n != iface and (b is None or not b.vnet)]
            nft_factory().run(ruleset.remove_bridge(iface, sorted(rest), nd_target=nd_target(nft_factory),
                                                    log=state.loaded_log(paths)))
            state.unmark_applied(paths, iface)
            log.info(f"{iface}: down, L2 isolation rules removed")


def teardown(paths, nft_factory, environ=None, dry_run=False):
    """Remove our table and forget every decision (package removal); name
    the guests of this node that lose their L2 isolation, and those that
    still have our hookscript attached (once the package is gone, its copy
    in snippets/ refuses their start under fail-closed)."""
    here = node.local_node(paths, environ)
    warnings = []
    try:
        cfg = pveconf.config(paths)
    except ConfigError as e:
        warnings.append(f"cannot read the configuration ({e}); guests are not named")
        cfg = None
    managed = cfg.names if cfg is not None else frozenset()
    exposed, attached = [], []
    for guest, gc, _ in cluster.guest_configs(paths, [g for g in cluster.guests(paths) if g.node == here]):
        nics = protection.nics_on(gc, managed) if gc is not None else []
        if nics:
            exposed.append({"vmid": guest.vmid, "type": guest.type, "nics": [f"{n.key}@{n.bridge}" for n in nics]})
        if gc is not None and hookscripts.is_ours(gc.hookscript, paths.hookscript.name):
            settings = cfg.guests.get(guest.vmid) if cfg is not None else None
            attached.append({"vmid": guest.vmid, "type": guest.type, "hookscript": gc.hookscript,
                             "chain": (settings.chain if settings else None)
                             or (cfg.hookscript.chain if cfg is not None else None)})
    if not dry_run:
        with state.locked(paths):
            nft_factory().run(ruleset.delete_table())
            state.forget(paths)
    return Result({"node": here, "dry-run": dry_run, "removed": not dry_run,
                   "guests-without-l2-isolation": exposed, "guests-with-hookscript": attached},
                  ExitCode.OK, warnings)
