"""`pve-microseg vnet enable|disable`: a VNet's L2 rules (microseg.yaml) and
its VNet firewall (through pvesh).

What the VNet firewall gets and what must hold first is policy/vnetfw.py's;
what became of an SDN apply on each node is policy/sdnapply.py's; this module
reads the cluster, calls pvesh and edits microseg.yaml.
"""

from ..edges import cluster, pmxcfs, pveconf
from ..model.errors import ConfigError, ExitCode, MicrosegError, PrerequisiteError, PveshError, RolledBack
from ..parse import addresses, tasklog
from ..policy import sdnapply, vnetfw, yamledit
from . import configedit
from .result import Result


def _in_running_config(paths, vnet):
    running = pveconf.running_sdn(paths)
    return running is not None and vnet in running.vnets


def prerequisites(paths, vnet, enable_datacenter=False, lockout_confirmed=False):
    dc = pveconf.firewall(paths.cluster_fw)
    options = {"enable": dc.option("enable") or "0"}
    mgmt = dc.find("ipset", "management")
    entries = [l.strip() for l in mgmt.lines if l.strip() and not l.strip().startswith("#")] if mgmt else None
    hosts = {n: pveconf.firewall(paths.host_fw(n)).option("nftables") == "1" for n in cluster.nodes(paths)}
    return vnetfw.check(options, entries, hosts, _in_running_config(paths, vnet),
                        enable_datacenter=enable_datacenter, lockout_confirmed=lockout_confirmed)


# PVE 9's global SDN lock (PUT /cluster/sdn/lock): while /etc/pve/sdn/.lock
# holds a token, an SDN apply without it fails with "invalid lock token
# provided!" (pve-network src/PVE/Network/SDN.pm, lock_sdn_config); we never take it.
_SDN_LOCKED = ("the SDN configuration is locked ({lock} exists: an SDN edit in progress through the "
               "API or the GUI holds the global SDN lock); apply the SDN when it is released "
               "(pvesh set /cluster/sdn), or run again then")


# How long `vnet enable --apply` waits for a node's network reload that still runs.
RELOAD_TIMEOUT = 30.0


def _apply_sdn(pvesh, report):
    """PUT /cluster/sdn; its task's result, or None in a dry run.  The task
    fails only when it cannot start the nodes' reloads at all (no quorum):
    what each node's reload did is _node_reloads'."""
    try:
        res = pvesh.set("/cluster/sdn")
    except PveshError as e:
        if "invalid lock token" in str(e):
            raise PveshError(_SDN_LOCKED.format(lock="/etc/pve/sdn/.lock") + f" [{e}]") from None
        raise
    if res is None:                   # dry run
        report.append("the SDN apply (pvesh set /cluster/sdn) would run; it applies every pending SDN "
                      "change and a pending /etc/network/interfaces.new on each node, and each node's "
                      "network reload (its srvreload task) would then be checked")
        return None
    ok, status = pvesh.task_result(res["upid"])
    if not ok:
        raise MicrosegError(f"the SDN apply failed: {status} (task {res['upid']})")
    if status != "OK":
        report.append(f"the SDN apply ended with {status}: see its task log "
                      f"(pvesh get /nodes/<node>/tasks/{res['upid']}/log)")
    report.append(f"SDN applied ({res['upid']}); each node's network reload:")
    return res


def _node_reloads(paths, pvesh, res, timeout):
    """[NodeReload] of each node the apply went through: its srvreload task of
    this apply, found in its task list and read (waiting up to `timeout`
    seconds for those still running).  Never raises: what cannot be read is
    `unknown`."""
    sections = tasklog.reload_sections(res.get("log") or [])
    nodes = sorted(sections) or cluster.nodes(paths)
    apply_task = tasklog.decode_upid(res["upid"])
    if apply_task is None:
        return [sdnapply.NodeReload(n, sdnapply.UNKNOWN, f"network reload outcome unknown: cannot read "
                                    f"the apply's UPID {res['upid']!r}") for n in nodes]
    started = apply_task.starttime
    online = cluster.online(paths)
    reloads, found = {}, {}
    for node in nodes:
        call_failed = tasklog.call_failure(sections.get(node, []))
        if online.get(node) is False:
            reloads[node] = sdnapply.offline(node, call_failed)
            continue
        try:
            tasks = pvesh.tasks(node, typefilter=sdnapply.TASK_TYPE, since=sdnapply.since(started), source="all")
        except PveshError as e:
            reloads[node] = sdnapply.unreachable(node, e, call_failed)
            continue
        task, count = sdnapply.pick(tasks, started)
        if task is None:
            reloads[node] = sdnapply.not_found(node, started, call_failed)
        else:
            found[node] = (task["upid"], count, call_failed)
    statuses = pvesh.wait_tasks([upid for upid, _, _ in found.values()], timeout)
    for node, (upid, count, call_failed) in found.items():
        status = statuses[upid]
        if isinstance(status, PveshError):
            reloads[node] = sdnapply.status_unreadable(node, upid, status)
        else:
            reloads[node] = sdnapply.judge(node, upid, status, timeout, count, call_failed)
    return [reloads[n] for n in nodes]


def _rules_path(vnet):
    return f"/cluster/sdn/vnets/{vnet}/firewall/rules"


def _result(vnet, action, pvesh, report, dry_run, extra=None, exit_code=ExitCode.OK, warnings=()):
    data = {"vnet": vnet, "action": action, "dry-run": dry_run,
            "pvesh": [str(c) for c in pvesh.calls if c.verb != "get"], "notes": report}
    return Result(dict(data, **(extra or {})), exit_code, list(warnings))


def _record(paths, vnet, macs, current_opts, turn_on_dc):
    """The microseg.yaml change of `vnet enable`: the VNet's gateway MACs and,
    once, the VNet firewall options it found (what `vnet disable` restores)."""
    def change(text):
        spec = configedit.parse(paths, text).bridge(vnet)
        if spec is None and not macs:
            raise MicrosegError(f"{vnet} is not in {paths.config} yet: give its router's MAC with "
                                "--gateway-mac (several for VRRP)")
        fields = {}
        if macs:
            fields["gateway-mac"] = macs
        if spec is None or spec.vnet_firewall_before is None:
            before = {"enable": current_opts.get("enable", ""),
                      "policy_forward": current_opts.get("policy_forward", ""),
                      "added-bridge": spec is None}            # true/false: read back as that text
            if turn_on_dc:
                before["enabled-datacenter-firewall"] = True
            fields["vnet-firewall-before"] = before
        if not fields:
            return text
        return yamledit.set_entry(text, ("bridges", vnet), fields, merge=True, path=paths.config)
    return change


def _configure(pvesh, vnet, allow, current_opts, turn_on_dc, created):
    """Our rules first, DROP last, then the datacenter firewall; the names of
    the rules added go into `created` as they are."""
    have = vnetfw.ours(pvesh.get(_rules_path(vnet)))
    for rule in vnetfw.desired(vnet, allow):
        if rule.name not in have:
            pvesh.create(_rules_path(vnet), **rule.api_params())
            created.append(rule.name)
    if str(current_opts.get("enable", "")) != "1" or current_opts.get("policy_forward") != "DROP":
        pvesh.set(f"/cluster/sdn/vnets/{vnet}/firewall/options", enable=1, policy_forward="DROP")
    if turn_on_dc:
        pvesh.set("/cluster/firewall/options", enable=1)


def _gateway_macs(texts):
    """--gateway-mac values -> canonical MACs; MicrosegError naming a bad one."""
    try:
        return [addresses.parse_mac(m) for m in texts]
    except ValueError as e:
        raise MicrosegError(f"--gateway-mac: {e}; nothing was changed") from None


def enable(paths, pvesh, vnet, gateway_macs=(), allow=(), apply_sdn=False, enable_datacenter=False,
           lockout_confirmed=False, dry_run=False, timeout=RELOAD_TIMEOUT):
    """Record, then rules, then DROP last: the VNet is never on DROP without
    its ACCEPT rules.  A failure undoes what this run did and says so.

    With `apply_sdn`, each node's network reload is checked last: a node whose
    reload failed does not undo the run (the other nodes did reload, and the
    VNet firewall protects them), it ends with ExitCode.NODE_RELOAD."""
    if not (_in_running_config(paths, vnet) or vnet in pveconf.pending_vnets(paths)):
        raise ConfigError(paths.sdn_vnets, None, vnet, f"no SDN VNet {vnet!r} (pending or running)")
    pre = prerequisites(paths, vnet, enable_datacenter, lockout_confirmed)
    if apply_sdn:
        pre = pre.without(vnetfw.Need.NOT_APPLIED)
        if paths.sdn_lock.exists():
            raise PrerequisiteError(_SDN_LOCKED.format(lock=paths.sdn_lock) + "; nothing was changed")
    if pre.problems:
        raise PrerequisiteError("nothing was changed:\n" + "\n".join(
            f"  - {p.what}\n    fix: {p.how}" for p in pre.problems))
    report = [n.what for n in pre.notes]
    macs = _gateway_macs(gateway_macs)
    current_opts = pvesh.get(f"/cluster/sdn/vnets/{vnet}/firewall/options") or {}
    turn_on_dc = enable_datacenter and pre.notes_of(vnetfw.Need.TURN_ON_DATACENTER)
    edit = configedit.edit(paths, _record(paths, vnet, macs, current_opts, turn_on_dc), dry_run=dry_run,
                           entry=("bridges", vnet))
    if edit.changed:
        report.append(("would change" if dry_run else "changed") + f" {paths.config}:\n" + edit.diff())
    created, applied = [], None
    try:
        if apply_sdn:
            applied = _apply_sdn(pvesh, report)
        _configure(pvesh, vnet, allow, current_opts, turn_on_dc, created)
    except MicrosegError as e:
        if dry_run:
            raise
        raise RolledBack(e, _undo(paths, pvesh, vnet, created, edit)) from None
    if applied is None:
        return _result(vnet, "enable", pvesh, report, dry_run, {"sdn-apply": None})
    reloads = _node_reloads(paths, pvesh, applied, timeout)
    failed = [r for r in reloads if r.outcome == sdnapply.FAILED]
    warnings = [r.text() for r in reloads if r.outcome != sdnapply.OK]
    if failed:
        warnings.append(sdnapply.reload_again(failed))
    return _result(vnet, "enable", pvesh, report, dry_run,
                   {"sdn-apply": {"upid": applied["upid"], "nodes": [r.to_json() for r in reloads]}},
                   ExitCode.NODE_RELOAD if failed else ExitCode.OK, warnings)


def _undo(paths, pvesh, vnet, created, edit):
    """Best effort: remove the rules this run created, take its microseg.yaml
    edit back (an inverse edit: what another command wrote since stays)."""
    notes = []
    try:
        have = vnetfw.ours(pvesh.get(_rules_path(vnet)))
        for pos in sorted((p for n in created for p in have.get(n, [])), reverse=True):
            pvesh.delete(f"{_rules_path(vnet)}/{pos}")
        if created:
            notes.append(f"removed the {len(created)} rule(s) this run had added")
    except MicrosegError as e:
        notes.append(f"could not undo everything ({e}); run 'pve-microseg vnet disable {vnet}'")
    if edit.changed:
        notes.append(configedit.undo(paths, edit).text())
    return "undone: " + ("; ".join(notes) or "nothing had changed")


def disable(paths, pvesh, vnet, dry_run=False):
    """Options back first, then our rules out: never DROP without the ACCEPT rules."""
    report = []
    spec = configedit.parse(paths, pmxcfs.read_file(paths.config)).bridge(vnet)
    before = (spec.vnet_firewall_before if spec else None) or {}
    have = vnetfw.ours(pvesh.get(_rules_path(vnet)))
    if not before:
        if have:
            raise MicrosegError(
                f"{paths.config} has no record (vnet-firewall-before) of {vnet}'s VNet firewall options "
                "before 'vnet enable', so removing its pve-microseg rules could leave the VNet dropping "
                f"everything; set the options by hand (pvesh set /cluster/sdn/vnets/{vnet}/firewall/options "
                "--enable 0 or --policy_forward ACCEPT), then run 'vnet disable' again")
        report.append(f"{vnet}: nothing of 'vnet enable' to undo")
        return _result(vnet, "disable", pvesh, report, dry_run)
    restore, delete = {}, []
    for key in ("enable", "policy_forward"):
        if before.get(key):
            restore[key] = before[key]
        else:
            delete.append(key)
    pvesh.set(f"/cluster/sdn/vnets/{vnet}/firewall/options", delete=",".join(delete) or None, **restore)
    for pos in sorted((p for positions in have.values() for p in positions), reverse=True):
        pvesh.delete(f"{_rules_path(vnet)}/{pos}")
    if before.get("enabled-datacenter-firewall") == "true":
        report.append("'vnet enable' had turned the datacenter firewall on; it stays on (other guests may rely "
                      "on it): pvesh set /cluster/firewall/options --enable 0 turns it off")

    def forget(text):
        if before.get("added-bridge") == "true":
            return yamledit.remove_entry(text, ("bridges", vnet), path=paths.config)
        return yamledit.remove_key(text, ("bridges", vnet), "vnet-firewall-before", path=paths.config)

    edit = configedit.edit(paths, forget, dry_run=dry_run)
    if edit.changed:
        report.append(("would change" if dry_run else "changed") + f" {paths.config}:\n" + edit.diff())
    return _result(vnet, "disable", pvesh, report, dry_run)
