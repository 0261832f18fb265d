"""`pve-microseg vnet enable|disable`: the edges of vnetfw (files read, pvesh and microseg.yaml written)."""

from . import addresses, config, configedit, fwfile, node, pmxcfs, sdn, vnetfw, yamledit
from .errors import ConfigError, MicrosegError


class PrerequisiteError(MicrosegError):
    """The cluster is not ready for a VNet firewall; nothing was changed."""

    exit_code = 8


def _in_running_config(paths, vnet):
    text = config._read(paths.sdn_running_config)
    return text is not None and vnet in sdn.parse_running_config(text, paths.sdn_running_config).vnets


def _known_vnet(paths, vnet):
    running = _in_running_config(paths, vnet)
    pending = config._read(paths.sdn_vnets) or ""
    listed = any(t == "vnet" and sid == vnet for t, sid, *_ in sdn.parse_section_config(pending, paths.sdn_vnets))
    return running or listed


def prerequisites(paths, vnet, args):
    cluster = fwfile.parse(pmxcfs.read_file(paths.firewall_dir / "cluster.fw"))
    options = {"enable": cluster.option("enable") or "0"}
    mgmt = cluster.find("ipset", "management")
    entries = [l.strip() for l in mgmt.lines if l.strip() and not l.strip().startswith("#")] if mgmt else None
    hosts = {}
    for n in node.cluster_nodes(paths):
        host = fwfile.parse(pmxcfs.read_file(paths.pve_dir / "nodes" / n / "host.fw"))
        hosts[n] = host.option("nftables") == "1"
    return vnetfw.check(options, entries, hosts, _in_running_config(paths, vnet),
                        enable_datacenter=args.enable_datacenter_firewall,
                        lockout_confirmed=args.i_have_console_access)


def _apply_sdn(pvesh, report):
    res = pvesh.set("/cluster/sdn")
    if res is None:                   # dry run
        report.append("the SDN apply (pvesh set /cluster/sdn) would run; it applies every pending SDN "
                      "change and a pending /etc/network/interfaces.new on each node")
        return
    ok, status = pvesh.task_result(res["upid"])
    if not ok:
        raise MicrosegError(f"the SDN apply failed: {status} (task {res['upid']})")
    if status != "OK":
        report.append(f"the SDN apply ended with {status}: a node may not have reloaded its network; "
                      f"see the task log (pvesh get /nodes/<node>/tasks/{res['upid']}/log)")
    report.append(f"SDN applied ({res['upid']})")


def _rules_path(vnet):
    return f"/cluster/sdn/vnets/{vnet}/firewall/rules"


def enable(paths, pvesh, args):
    """Record, then rules, then DROP last: the VNet is never on DROP without
    its ACCEPT rules.  A failure undoes what this run did and says so."""
    vnet = args.vnet
    if not _known_vnet(paths, vnet):
        raise ConfigError(paths.sdn_vnets, None, vnet, f"no SDN VNet {vnet!r} (pending or running)")
    report = []
    pre = prerequisites(paths, vnet, args)
    problems = [p for p in pre.problems if not (args.apply and "running SDN configuration" in p[0])]
    if problems:
        raise PrerequisiteError("nothing was changed:\n" + "\n".join(
            f"  - {what}\n    fix: {how}" for what, how in problems))
    report += list(pre.notes)
    macs = [addresses.parse_mac(m) for m in args.gateway_mac or []]
    current_opts = pvesh.get(f"/cluster/sdn/vnets/{vnet}/firewall/options") or {}
    turn_on_dc = args.enable_datacenter_firewall and any("will be turned on" in n for n in pre.notes)

    def record(text):
        doc = config.parse_document(text, paths.config) if text.strip() else config.Document()
        spec = next((b for b in doc.bridges if b.name == vnet), None)
        if spec is None and not macs:
            raise MicrosegError(f"{vnet} is not in {paths.config} yet: give its router's MAC with "
                                "--gateway-mac (several for VRRP)")
        fields = {}
        if macs:
            fields["gateway-mac"] = macs
        if spec is None or spec.vnet_firewall_before is None:
            before = {"enable": current_opts.get("enable", ""),
                      "policy_forward": current_opts.get("policy_forward", ""),
                      "added-bridge": "false" if spec else "true"}
            if turn_on_dc:
                before["enabled-datacenter-firewall"] = "true"
            fields["vnet-firewall-before"] = before
        if not fields:
            return text
        return yamledit.set_entry(text, ("bridges", vnet), fields, merge=True, path=paths.config)

    edit = configedit.edit(paths, record, dry_run=args.dry_run)
    if edit.changed:
        report.append(("would change" if args.dry_run else "changed") + f" {paths.config}:\n" + edit.diff())
    created = []
    try:
        if args.apply:
            _apply_sdn(pvesh, report)
        have = vnetfw.ours(pvesh.get(_rules_path(vnet)))
        for rule in vnetfw.desired(vnet, args.allow or ()):
            if rule.name not in have:
                pvesh.create(_rules_path(vnet), **rule.api_params())
                created.append(rule.name)
        if str(current_opts.get("enable", "")) != "1" or current_opts.get("policy_forward") != "DROP":
            pvesh.set(f"/cluster/sdn/vnets/{vnet}/firewall/options", enable=1, policy_forward="DROP")
        if turn_on_dc:
            pvesh.set("/cluster/firewall/options", enable=1)
    except MicrosegError as e:
        if args.dry_run:
            raise
        undone = _undo(paths, pvesh, vnet, created, edit)
        failure = MicrosegError(f"{e}\n{undone}")
        failure.exit_code = e.exit_code          # pvesh's refusal stays exit 7
        raise failure from None
    return report


def _undo(paths, pvesh, vnet, created, edit):
    """Best effort: remove the rules this run created, put microseg.yaml back."""
    notes = []
    try:
        have = vnetfw.ours(pvesh.get(_rules_path(vnet)))
        for pos in sorted((p for n in created for p in have.get(n, [])), reverse=True):
            pvesh.delete(f"{_rules_path(vnet)}/{pos}")
        if created:
            notes.append(f"removed the {len(created)} rule(s) this run had added")
        if edit.changed:
            configedit.edit(paths, lambda text: edit.old)
            notes.append(f"restored {paths.config}")
    except MicrosegError as e:
        notes.append(f"could not undo everything ({e}); run 'pve-microseg vnet disable {vnet}'")
    return "undone: " + ("; ".join(notes) or "nothing had changed")


def disable(paths, pvesh, args):
    """Options back first, then our rules out: never DROP without the ACCEPT rules."""
    vnet = args.vnet
    report = []
    doc = config.parse_document(pmxcfs.read_file(paths.config), paths.config)
    spec = next((b for b in doc.bridges if b.name == vnet), None)
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
        return report
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

    edit = configedit.edit(paths, forget, dry_run=args.dry_run)
    if edit.changed:
        report.append(("would change" if args.dry_run else "changed") + f" {paths.config}:\n" + edit.diff())
    return report
