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
        report.append("SDN apply (pvesh set /cluster/sdn) would run first")
        return
    ok, status = pvesh.task_result(res["upid"])
    if not ok:
        raise MicrosegError(f"the SDN apply failed: {status} (task {res['upid']}); nothing else was changed")
    report.append(f"SDN applied ({res['upid']})")


def enable(paths, pvesh, args):
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
            fields["vnet-firewall-before"] = {"enable": current_opts.get("enable", ""),
                                              "policy_forward": current_opts.get("policy_forward", ""),
                                              "added-bridge": "false" if spec else "true"}
        if not fields:
            return text
        return yamledit.set_entry(text, ("bridges", vnet), fields, merge=True, path=paths.config)

    edit = configedit.edit(paths, record, dry_run=args.dry_run)
    if edit.changed:
        report.append(f"{paths.config}: {vnet} recorded")
    if args.apply:
        _apply_sdn(pvesh, report)
    if str(options_value(current_opts, "enable")) != "1" or current_opts.get("policy_forward") != "DROP":
        pvesh.set(f"/cluster/sdn/vnets/{vnet}/firewall/options", enable=1, policy_forward="DROP")
    if args.enable_datacenter_firewall:
        pvesh.set("/cluster/firewall/options", enable=1)
    have = vnetfw.ours(pvesh.get(f"/cluster/sdn/vnets/{vnet}/firewall/rules"))
    for rule in vnetfw.desired(vnet, args.allow or ()):
        if rule.name not in have:
            pvesh.create(f"/cluster/sdn/vnets/{vnet}/firewall/rules", **rule.api_params())
    return report


def options_value(options, key):
    value = options.get(key)
    return "" if value is None else value


def disable(paths, pvesh, args):
    vnet = args.vnet
    report = []
    doc = config.parse_document(pmxcfs.read_file(paths.config), paths.config)
    spec = next((b for b in doc.bridges if b.name == vnet), None)
    before = (spec.vnet_firewall_before if spec else None) or {}
    have = vnetfw.ours(pvesh.get(f"/cluster/sdn/vnets/{vnet}/firewall/rules"))
    for name, pos in sorted(have.items(), key=lambda kv: -kv[1]):
        pvesh.delete(f"/cluster/sdn/vnets/{vnet}/firewall/rules/{pos}")
    if before:
        restore, delete = {}, []
        for key in ("enable", "policy_forward"):
            (restore.__setitem__(key, before[key]) if before.get(key) else delete.append(key))
        pvesh.set(f"/cluster/sdn/vnets/{vnet}/firewall/options", delete=",".join(delete) or None, **restore)
    else:
        report.append(f"no record of the options before 'vnet enable' in {paths.config}: "
                      "enable/policy_forward left as they are")

    def forget(text):
        if before.get("added-bridge") == "true":
            return yamledit.remove_entry(text, ("bridges", vnet), path=paths.config)
        if spec is None:
            return text
        keep = {k: v for k, v in yamledit._existing_fields(_entry_node(text, vnet)).items()
                if k != "vnet-firewall-before"}
        return yamledit.set_entry(text, ("bridges", vnet), keep, path=paths.config)

    if spec is not None:
        edit = configedit.edit(paths, forget, dry_run=args.dry_run)
        if edit.changed:
            report.append(f"{paths.config}: {vnet} " + ("removed" if before.get("added-bridge") == "true"
                                                        else "kept, without its vnet-firewall-before record"))
    return report


def _entry_node(text, vnet):
    root = yamledit._compose(text, "microseg.yaml")
    return yamledit._child(yamledit._child(root, "bridges")[1], vnet)[1]
