"""`pve-microseg guest attach|detach|sync`: the hookscript on guests, and a
running guest's ipfilter sets written now.

attach/detach set each guest's hookscript through pvesh on the guest's own
node (policy/hookscripts.py decides what each guest needs); a guest's own
hookscript is recorded as `guests: <vmid>: chain:` in microseg.yaml and
runs after ours.  Each guest is handled on its own: one failure does not
stop the others, and the exit status says that one failed.
"""

import io

from ..edges import cluster, node, pveconf
from ..model.errors import ExitCode, MicrosegError, RolledBack
from ..policy import hookscripts, yamledit
from ..policy.hookscripts import Step
from . import configedit
from .guesthook import PREFIX, Hook
from .result import Result


def select(paths, vmids=(), vnet=None, all_guests=False):
    """The guests named by VMID, by VNet (a NIC on it) or all of them."""
    if (all_guests or vnet) and vmids:
        raise MicrosegError("give VMIDs, or --vnet, or --all, not several")
    everyone = cluster.guests(paths)
    if all_guests:
        return everyone
    if vnet:
        configs = list(cluster.guest_configs(paths, everyone))
        chosen = [g for g, gc, _ in configs if gc is not None and any(n.bridge == vnet for n in gc.nics)]
        known = set() if chosen else _known_bridges(paths, configs)
        if not chosen and vnet not in known:
            raise MicrosegError(f"--vnet {vnet}: no such VNet or bridge (known: "
                                f"{', '.join(sorted(known)) or 'none'})")
        return chosen
    by_vmid = {g.vmid: g for g in everyone}
    missing = [v for v in vmids if v not in by_vmid]
    if missing:
        raise MicrosegError(f"no guest {', '.join(map(str, missing))} in this cluster ({paths.vmlist})")
    if not vmids:
        raise MicrosegError("name the guests: VMID..., --vnet VNET or --all")
    return [by_vmid[v] for v in vmids]


def _known_bridges(paths, configs):
    """The VNets and bridges --vnet can name: SDN's VNets (applied or
    pending), the managed bridges, and the bridges guests' NICs are on."""
    known = {n.bridge for _, gc, _ in configs if gc is not None for n in gc.nics if n.bridge}
    for names in (lambda: pveconf.sdn(paths).vnets, lambda: pveconf.pending_vnets(paths),
                  lambda: pveconf.config(paths).names):
        try:
            known |= set(names())
        except MicrosegError:
            pass            # unreadable here: the guests' bridges still say what exists
    return known


def _record_chain(paths, vmid, chain, dry_run):
    where = ("guests", str(vmid))
    return configedit.edit(paths, lambda t: yamledit.set_entry(t, where, {"chain": chain}, merge=True,
                                                               path=paths.config),
                           dry_run=dry_run, entry=where)


def _forget_chain(paths, vmid):
    """microseg.yaml's text -> the text without guests: <vmid>: chain: (the
    entry's other lines stay as they are; an entry left empty goes)."""
    where = ("guests", str(vmid))

    def change(text):
        g = configedit.parse(paths, text).guests.get(vmid)
        if g is None or g.chain is None:
            return text
        text = yamledit.remove_key(text, where, "chain", path=paths.config)
        if yamledit.fields_of(text, where, path=paths.config) == {}:
            text = yamledit.remove_entry(text, where, path=paths.config)
        return text
    return change


def _one(paths, pvesh, action, guest, ours, settings, dry_run):
    current = pveconf.guest_config(paths, guest).hookscript
    chained = settings.chain if settings else None
    name = paths.hookscript.name
    step = hookscripts.attach(current, chained, ours, name) if action == "attach" else \
        hookscripts.detach(current, chained, name)
    if step.step is Step.REFUSE:
        raise MicrosegError(f"{step.why} recorded in {paths.config}; detach first or edit "
                            f"guests: {guest.vmid}: chain:")
    if step.step is Step.RECORD_AND_SET:
        recorded = _record_chain(paths, guest.vmid, step.chain, dry_run)
        try:
            pvesh.set(guest.api_path, hookscript=step.volume)
        except MicrosegError as e:
            if recorded.changed and not dry_run:
                undone = configedit.undo(paths, recorded)
                raise RolledBack(e, f"undone: the chain recorded in {paths.config}" if undone.complete
                                 else undone.text()) from None
            raise
    elif step.step is Step.SET:
        pvesh.set(guest.api_path, hookscript=step.volume)
        if action == "detach":
            configedit.edit(paths, _forget_chain(paths, guest.vmid), dry_run=dry_run)
    elif step.step is Step.DELETE:
        pvesh.set(guest.api_path, delete="hookscript")
    return step.why


def attach_or_detach(paths, pvesh, action, guests, storage="local", dry_run=False):
    """Set (attach) or remove (detach) our hookscript on each guest."""
    if not dry_run and not node.is_root():
        raise MicrosegError("only root@pam may set hookscripts: run this as root on a cluster node")
    ours = f"{storage}:snippets/{paths.hookscript.name}"
    settings_of = pveconf.config(paths).guests
    rows, failed = [], False
    for g in guests:
        try:
            result = _one(paths, pvesh, action, g, ours, settings_of.get(g.vmid), dry_run)
        except MicrosegError as e:
            result, failed = f"FAILED: {e}", True
        rows.append({"vmid": g.vmid, "node": g.node, "type": g.type, "result": result})
    st = cluster.storages(paths).get(storage)
    install_on = []
    if action == "attach" and st is not None and not st.shared:
        install_on = sorted({r["node"] for r in rows if r["result"].startswith("attached")})
    data = {"guests": rows, "pvesh": [str(c) for c in pvesh.calls if c.verb != "get"], "dry-run": dry_run,
            "storage": storage, "install-on": install_on}
    return Result(data, ExitCode.ERROR if failed else ExitCode.OK)


def sync(paths, environ, vmids):
    """Write each guest's ipfilter sets now, as its pre-start does.  Each
    guest on its own: a failure is reported naming the guest and its node,
    and the others are still synced; the exit status is the failure's (1
    when failures differ)."""
    by_vmid = {g.vmid: g for g in cluster.guests(paths)}
    synced, failed, warnings = [], [], []
    for vmid in vmids:
        guest = by_vmid.get(vmid)
        if guest is None:
            failed.append({"vmid": vmid, "node": None, "type": None, "exit-code": int(ExitCode.ERROR),
                           "error": f"no guest {vmid} in this cluster ({paths.vmlist})"})
            continue
        who = f"guest {vmid} ({guest.type} on {guest.node})"
        out, err = io.StringIO(), io.StringIO()
        hook = Hook(vmid, "pre-start", environ, paths, out, err, owner_node=guest.node)
        try:
            hook.pre_start(hook.config())
        except Exception as e:          # noqa: BLE001 -- one guest's failure never stops the others
            if not isinstance(e, MicrosegError):
                e = MicrosegError(f"internal error {e.__class__.__name__}: {e} (please report it)")
            failed.append({"vmid": vmid, "node": guest.node, "type": guest.type,
                           "exit-code": int(e.exit_code), "error": str(e)})
            warnings.append(f"{who}: NOT synced: {e}")
        else:
            synced.append({"vmid": vmid, "node": guest.node,
                           "log": [line.removeprefix(PREFIX) for line in out.getvalue().splitlines()]})
        finally:
            warnings += [f"{who}: " + line.removeprefix(PREFIX).removeprefix("WARNING: ")
                         for line in err.getvalue().splitlines()]
    codes = {f["exit-code"] for f in failed}
    exit_code = ExitCode.OK if not failed else ExitCode(codes.pop()) if len(codes) == 1 else ExitCode.ERROR
    return Result({"synced": synced, "failed": failed}, exit_code, warnings=warnings)
