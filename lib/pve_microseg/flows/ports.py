"""`pve-microseg port bind|unbind PORT...`: one guest port's binding, now.

What the udev rule runs when a guest port appears (a VM's tap, a container's
veth, a firewall bridge's fwpr: on start, hot-plug and re-plug) or goes, so
that every guest is bound whether or not the hookscript is attached.  The
binding is the one `apply` would give (policy/bindings.py, decided with the
MACs and addresses every guest of the cluster claims); the port's elements
are replaced in the kernel's bind-* sets in one transaction, under the node
lock.  A port before its binding sends nothing: a missed or slow trigger
leaves it closed, never open.
"""

from ..edges import cluster, node, pveconf, state
from ..model.binding import PortBinding
from ..model.errors import MicrosegError, RolledBack
from ..policy import bindings, ruleset
from .result import Result


def _desired(paths, names):
    """{port: PortBinding or None} for these port names, and warnings."""
    cfg = pveconf.config(paths)
    wanted = {n: bindings.port_owner(n) for n in names}
    vmids = {o[0] for o in wanted.values() if o}
    everyone, mine, warnings, complete = [], {}, [], True
    # A port named after a guest is that guest's, wherever its config is: on
    # a live migration the target's tap appears while the config is still on
    # the source node.
    for guest, gc, error in cluster.guest_configs(paths, cluster.guests(paths)):
        if gc is not None:
            everyone.append(gc)
            if guest.vmid in vmids:
                mine[guest.vmid] = gc
            continue
        complete = False
        if guest.vmid in vmids:
            warnings.append(f"guest {guest.vmid}: {error}; its ports stay closed")
    bound, why = bindings.node_bindings(list(mine.values()), everyone, cfg, pveconf.ipam(paths), complete)
    by_port = {b.port: b for b in bound}
    out = {}
    for name, owner in wanted.items():
        if owner is None:
            warnings.append(f"{name} is not a guest port (tap<vmid>i<n>, veth<vmid>i<n>, fwpr<vmid>p<n>)")
        elif owner[0] not in mine:
            warnings.append(f"{name}: guest {owner[0]} is not in the cluster's .vmlist")
        out[name] = by_port.get(name)
    return out, warnings + list(why)


def _kernel_elements(nft):
    """{set: [elements]} of the bind-* sets as the kernel holds them; None without our table."""
    loaded = {}
    for name in ruleset.BIND_SETS:
        elems = nft.set_elements(ruleset.FAMILY, ruleset.TABLE, name)
        if elems is None:
            return None
        loaded[name] = elems
    return loaded


def _to_remove(loaded, names, new):
    """The elements to delete: every element of these ports, and any other
    port's element naming a MAC or address that a new binding takes (a
    stale binding never keeps what another guest was just given)."""
    taken = {v for elems in ruleset.bindings_elements(new).values() for e in elems
             for v in ruleset.element_values(e)}
    return {name: [e for e in elems if ruleset.element_port(e) in names
                   or taken.intersection(ruleset.element_values(e))]
            for name, elems in loaded.items()}


def _record(paths, names, removed, new):
    gone = names | {ruleset.element_port(e) for elems in removed.values() for e in elems}
    current = [b for b in (state.loaded_bindings(paths) or []) if b["port"] not in gone]
    state.record_bindings(paths, sorted([PortBinding.from_json(b) for b in current] + new,
                                        key=lambda b: b.port))


def change(paths, nft_factory, action, names, environ=None, dry_run=False):
    """action "bind": give these ports the binding apply would; "unbind":
    remove their elements (the port is gone).  When the binding cannot be
    decided (a configuration that cannot be read), the ports' elements are
    removed all the same: a port never keeps a binding it may no longer have."""
    names = list(dict.fromkeys(names))
    here = node.local_node(paths, environ)
    with state.locked(paths):
        nft = nft_factory(dry_run=dry_run)
        loaded = _kernel_elements(nft)
        if loaded is None:
            raise MicrosegError(f"table bridge {ruleset.TABLE} is not loaded on {here}: nothing to bind "
                                "('pve-microseg apply' loads it, with every binding)")
        failure = None
        desired, warnings = {n: None for n in names}, []
        if action == "bind":
            try:
                desired, warnings = _desired(paths, names)
            except MicrosegError as e:
                failure = e
        new = [b for b in desired.values() if b is not None]
        remove = _to_remove(loaded, set(names), new)
        nft.run(ruleset.rebind(remove, new))
        if not dry_run:
            _record(paths, set(names), remove, new)
    if failure is not None:
        raise RolledBack(failure, f"closed: {', '.join(names)} lost any binding they had")
    data = {"node": here, "action": action, "dry-run": dry_run,
            "ports": [{"port": n, "binding": b.to_json() if b else None} for n, b in desired.items()],
            "removed-elements": sum(len(v) for v in remove.values()), "warnings": warnings}
    return Result(data, warnings=warnings)
