"""The `pve-microseg` command line (pvesh/qm conventions)."""

import argparse
import json
import os
import sys

from . import (__version__, config, configedit, guesthook, guests, node, reconcile, sdn, state, storage,
               fwfile, fwlint, pmxcfs, status, vnetcmd, vnetfw, yamledit)
from .errors import ConfigError, MicrosegError
from .log import Log
from .nft import Nft
from .paths import Paths
from .pvesh import Pvesh

FORMATS = ("text", "json", "json-pretty", "yaml")

DESCRIPTION = """\
Microsegmentation for Proxmox VE: guests on a managed bridge (SDN VNet or
Linux bridge) reach their gateway and nothing else, on every node.

Managed bridges are listed in /etc/pve/microseg.yaml (cluster-wide) and in the
legacy /etc/pve/L2-microsegmentation.conf (BRIDGE;GATEWAY_IP;GATEWAY_MAC).
The if-up.d hook loads a bridge's rules whenever ifupdown2 brings it up (boot,
ifreload -a, SDN apply); 'apply' reconciles every managed bridge of this node
at once.
"""

EPILOG = """\
environment (for tests and unusual layouts):
  PVE_MICROSEG_PVE_DIR        cluster file system          (/etc/pve)
  PVE_MICROSEG_STATE_DIR      node-local cache             (/var/lib/pve-microseg)
  PVE_MICROSEG_RUN_DIR        runtime state                (/run/pve-microseg)
  PVE_MICROSEG_NETWORK_DIR    ifupdown2 configuration      (/etc/network)
  PVE_MICROSEG_SYS_CLASS_NET  network devices              (/sys/class/net)
  PVE_MICROSEG_SHARE_DIR      the packaged hookscript      (/usr/share/pve-microseg)
  PVE_MICROSEG_PVESH          Proxmox's API client         (/usr/bin/pvesh)
  PVE_MICROSEG_SSH            ssh to the other nodes       (/usr/bin/ssh)

exit status: 0 ok, 1 error, 2 invalid configuration (nothing changed),
3 nftables refused the change (nothing changed), 4 nftables unavailable,
7 pvesh refused a call, 8 a prerequisite of 'vnet enable' is missing,
9 'status' found something unprotected, 10 'check' found errors or warnings.
"""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _output_format(parser):
    parser.add_argument("--output-format", choices=FORMATS, default="text",
                        help="text (default), json (one line), json-pretty or yaml, as pvesh")


def build_parser():
    p = argparse.ArgumentParser(prog="pve-microseg", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=_formatter)
    p.add_argument("--version", action="version", version=f"pve-microseg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    a = sub.add_parser(
        "apply", formatter_class=_formatter,
        help="reconcile the rules of every managed bridge on this node",
        description="Replace this node's pve-microseg nftables table with the desired one, "
                    "in one atomic transaction: every managed bridge gets its rules (a bridge "
                    "that does not exist on this node yet is protected from its first frame), "
                    "bridges no longer managed lose them. On an invalid configuration nothing "
                    "changes.")
    a.add_argument("--dry-run", action="store_true",
                   help="check the transaction with the kernel but change nothing")
    a.add_argument("--diff", action="store_true",
                   help="show what changes, bridge by bridge, against what is loaded now")
    _output_format(a)

    s = sub.add_parser(
        "show", formatter_class=_formatter,
        help="show the desired state of this node (bridges, gateways, nftables ruleset)",
        description="Show which bridges are managed, their gateways, whether each exists on "
                    "this node, and (json) the exact nftables transaction 'apply' would load.")
    _output_format(s)

    h = sub.add_parser(
        "hookscript", formatter_class=_formatter,
        help="manage the guest hookscript (anti-spoofing sets at guest start)",
        description="The guest hookscript writes each guest's ipfilter sets at pre-start; see "
                    "pve-microseg-hookscript(8).")
    hsub = h.add_subparsers(dest="action", metavar="ACTION")
    hsub.required = True
    hi = hsub.add_parser(
        "install", formatter_class=_formatter,
        help="copy the hookscript into a storage's snippets directory on this node",
        description="Copy /usr/share/pve-microseg/pve-microseg-hookscript to "
                    "<storage path>/snippets/ (executable), where 'qm set <vmid> --hookscript "
                    "<storage>:snippets/pve-microseg-hookscript' finds it. A storage that is not "
                    "shared is local to each node: run this on every node (the output names "
                    "them). Running it again after a package upgrade refreshes the copy.")
    hi.add_argument("--storage", default="local",
                    help="a path-based storage (dir, nfs, cifs, cephfs) (default: local)")
    hi.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    _output_format(hi)

    il = sub.add_parser(
        "import-legacy", formatter_class=_formatter,
        help="copy the bridges of /etc/pve/L2-microsegmentation.conf into microseg.yaml",
        description="Turn the article's BRIDGE;GATEWAY_IP;GATEWAY_MAC lines into bridges: "
                    "entries of /etc/pve/microseg.yaml (several lines of one bridge become its "
                    "lists of gateway MACs and IPs). Bridges microseg.yaml already has are left "
                    "as they are. The legacy file is not changed: once imported, it no longer "
                    "matters for those bridges (microseg.yaml wins), and can be deleted.")
    il.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    _output_format(il)

    g = sub.add_parser(
        "guest", formatter_class=_formatter,
        help="attach the hookscript to guests, detach it, write a running guest's sets now",
        description="Attach pve-microseg's hookscript to guests through pvesh, on each guest's own "
                    "node; VMs and containers. A guest that has another hookscript keeps it: it is "
                    "recorded as guests: <vmid>: chain: in microseg.yaml and runs after ours. "
                    "Only root@pam may set hookscripts.")
    gsub = g.add_subparsers(dest="action", metavar="ACTION")
    gsub.required = True
    for name, helptext in (("attach", "set the hookscript on these guests"),
                           ("detach", "remove it again (restoring a chained hookscript)")):
        ga = gsub.add_parser(name, formatter_class=_formatter, help=helptext, description=helptext)
        ga.add_argument("vmids", nargs="*", type=int, metavar="VMID")
        ga.add_argument("--vnet", help="every guest with a NIC on this VNet or bridge")
        ga.add_argument("--all", action="store_true", help="every guest of the cluster")
        ga.add_argument("--storage", default="local",
                        help="where the hookscript is installed (default: local)")
        ga.add_argument("--dry-run", action="store_true", help="print the pvesh calls, change nothing")
        _output_format(ga)
    gs = gsub.add_parser("sync", formatter_class=_formatter,
                         help="write a (running) guest's ipfilter sets now, as its pre-start would",
                         description="Write the guest's ipfilter sets now, exactly as its pre-start "
                                     "does (after a NIC change, which calls no hook).")
    gs.add_argument("vmids", nargs="+", type=int, metavar="VMID")
    _output_format(gs)

    v = sub.add_parser(
        "vnet", formatter_class=_formatter,
        help="turn a VNet's isolation on (L2 rules + VNet firewall) or off again",
        description="enable: record the VNet in microseg.yaml (its L2 rules load on every node "
                    "with the next SDN apply or 'apply'), set its VNet firewall to drop forwarded "
                    "traffic (policy_forward DROP) and add rules tagged 'pve-microseg:' that let the "
                    "gateway and the guests talk (+sdn/<vnet>-gateway, +sdn/<vnet>-all), plus the "
                    "--allow presets. Prerequisites are checked first and explained; nothing changes "
                    "while one is missing. Running it again changes nothing. disable: remove exactly "
                    "what enable added and restore the options it found.")
    vsub = v.add_subparsers(dest="action", metavar="ACTION")
    vsub.required = True
    ve = vsub.add_parser("enable", formatter_class=_formatter, help="isolate the guests of a VNet")
    vd = vsub.add_parser("disable", formatter_class=_formatter, help="undo 'vnet enable'")
    for sp in (ve, vd):
        sp.add_argument("vnet")
        sp.add_argument("--dry-run", action="store_true", help="print the pvesh calls and the "
                        "microseg.yaml change, change nothing")
        _output_format(sp)
    ve.add_argument("--gateway-mac", action="append", metavar="MAC",
                    help="the router's MAC on this VNet (repeat for VRRP/anycast routers)")
    ve.add_argument("--allow", action="append", choices=vnetfw.PRESETS, metavar="PRESET",
                    help=f"also let guests use: {', '.join(vnetfw.PRESETS)} (repeatable)")
    ve.add_argument("--apply", action="store_true",
                    help="run the SDN apply (pvesh set /cluster/sdn) and check its task's outcome")
    ve.add_argument("--enable-datacenter-firewall", action="store_true",
                    help="turn the datacenter firewall on if it is off")
    ve.add_argument("--i-have-console-access", action="store_true",
                    help="turn the datacenter firewall on even without a 'management' IP set")

    st = sub.add_parser(
        "status", formatter_class=_formatter,
        help="what is protected and what is not, cluster-wide (exit 9 if anything is not)",
        description="Per managed bridge: on which nodes it exists and carries its L2 rules (every "
                    "node is asked over ssh, in parallel; a node that does not answer is reported), "
                    "and for VNets the VNet firewall. Per guest with a NIC on a managed bridge: "
                    "hookscript attached, firewall=1 on those NICs, guest firewall and ipfilter on, "
                    "sets present and matching the known addresses. Exit status 9 when anything is "
                    "unprotected, so monitoring can alert on it.")
    st.add_argument("--local", action="store_true",
                    help="only this node's L2 rules (what other nodes ask for over ssh)")
    st.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each node (default 5)")
    _output_format(st)

    ck = sub.add_parser(
        "check", formatter_class=_formatter,
        help="lint the cluster's firewall files (exit 10 on errors or warnings)",
        description="Check cluster.fw, every node's host.fw, every guest's and every VNet's firewall "
                    "file: files proxmox-firewall's strict parser rejects (one freezes a whole node's "
                    "firewall), rules an earlier rule shadows, disabled rules, references to aliases "
                    "or ipsets that are not declared, ipfilter entries that admit a whole subnet, a VNet "
                    "firewall without the nftables backend, a datacenter firewall that risks locking "
                    "administrators out.")
    _output_format(ck)

    td = sub.add_parser(
        "teardown", formatter_class=_formatter,
        help="remove this node's L2 rules (what removing the package does)",
        description="Delete this node's nftables table bridge pve_microseg and the runtime state, and "
                    "name the guests of this node that lose their L2 isolation. The configuration "
                    "(/etc/pve/microseg.yaml, guests' firewall files) is not touched; 'apply' or the "
                    "next ifreload brings the rules back while the package is installed.")
    td.add_argument("--dry-run", action="store_true", help="name what would lose protection, change nothing")
    _output_format(td)
    return p


# ------------------------------------------------------------------ output

def _dump(data, fmt, out):
    if fmt == "json":
        out.write(json.dumps(data, sort_keys=True) + "\n")
    elif fmt == "json-pretty":
        out.write(json.dumps(data, sort_keys=True, indent=4) + "\n")
    else:
        import yaml
        out.write(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))


def _gateway_text(b):
    ips = " ".join(str(ip) for ip in b.gateway.ips)
    return f"gateway {', '.join(b.gateway.macs)}  {ips}"


def _diff_lines(p):
    lines = []
    for b in p.desired:
        if b.name in p.added:
            lines.append(f"+ {b.name}: {_gateway_text(b)}")
    for old, new in p.changed:
        for label, before, after in (
                ("gateway-mac", old.gateway.macs, new.gateway.macs),
                ("gateway-ip", tuple(map(str, old.gateway.ips)), tuple(map(str, new.gateway.ips)))):
            if before != after:
                lines.append(f"~ {new.name}: {label} {' '.join(before) or '-'} -> {' '.join(after) or '-'}")
    for name in p.removed:
        lines.append(f"- {name}")
    return lines


def _plan_json(p, source, done):
    return {
        "origin": source.origin,
        "warnings": source.warnings,
        "applied": done,
        "added": p.added,
        "removed": p.removed,
        "changed": [new.name for _, new in p.changed],
        "unchanged": p.unchanged,
        "not-on-this-node": p.absent,
        "bridges": [b.to_json() for b in p.desired],
    }


# ---------------------------------------------------------------- commands

def cmd_apply(args, paths, log, out):
    source = reconcile.read(paths)
    _warn_environment(source, paths, log)
    p = reconcile.plan(paths, source)
    nft = Nft(dry_run=args.dry_run)
    if args.dry_run:
        nft.run(p.transaction)          # the kernel checks it; nothing is committed
    else:
        reconcile.apply_plan(paths, p, nft)
    if args.output_format != "text":
        _dump(_plan_json(p, source, not args.dry_run), args.output_format, out)
        return 0
    if args.diff:
        for line in _diff_lines(p) or ["(no changes)"]:
            out.write(line + "\n")
    verb = "would load" if args.dry_run else "loaded"
    names = ", ".join(b.name for b in p.desired) or "none"
    out.write(f"{verb}: {len(p.desired)} managed bridge(s): {names}\n")
    if p.removed:
        out.write(f"{'would remove' if args.dry_run else 'removed'}: {', '.join(p.removed)}\n")
    if p.absent:
        out.write(f"not on this node (yet): {', '.join(p.absent)}: their rules wait, inert, "
                  "until the bridge exists\n")
    if args.dry_run:
        out.write("dry run: the kernel accepted the transaction; nothing was changed\n")
    return 0


def cmd_show(args, paths, log, out):
    source = reconcile.read(paths)
    _warn_environment(source, paths, log)
    p = reconcile.plan(paths, source)
    present = {b.name for b in p.desired} - set(p.absent)
    loaded = state.applied(paths)
    if args.output_format != "text":
        data = {
            "origin": source.origin,
            "warnings": source.warnings,
            "bridges": [dict(b.to_json(), present=b.name in present, loaded=b.name in loaded)
                        for b in source.bridges],
            "nftables": p.transaction,
        }
        _dump(data, args.output_format, out)
        return 0
    if not source.bridges:
        out.write(f"no managed bridges (configure them in {paths.config})\n")
        return 0
    out.write(f"managed bridges ({source.origin} configuration):\n")
    for b in source.bridges:
        where = "on this node" if b.name in present else "not on this node"
        rules = "rules loaded" if b.name in loaded else "no rules loaded"
        kind = "vnet" if b.vnet else "bridge"
        out.write(f"  {b.name:<15} {kind:<6} {where:<17} {rules:<16} from {b.source}\n")
        out.write(f"    gateway MAC: {', '.join(b.gateway.macs)}\n")
        if b.gateway.ipv4:
            out.write(f"    gateway IPv4: {', '.join(map(str, b.gateway.ipv4))}\n")
        if b.gateway.ipv6:
            out.write(f"    gateway IPv6: {', '.join(map(str, b.gateway.ipv6))}\n")
    out.write("guests (tap*, veth*, fwpr* ports) reach only these gateways; "
              "use --output-format json for the nftables ruleset\n")
    return 0


def cmd_hookscript(args, paths, log, out):
    st = storage.load(paths).get(args.storage)
    if st is None:
        raise ConfigError(paths.storage_cfg, None, args.storage, f"no storage {args.storage!r}")
    volume = f"{st.id}:snippets/{paths.hookscript.name}"
    target = storage.snippet_path(paths, volume)
    try:
        data = paths.hookscript.read_bytes()
    except OSError as e:
        raise MicrosegError(f"{paths.hookscript}: {e.strerror} (is the pve-microseg package installed?)")
    try:
        with open(target, "rb") as f:
            current = f.read() == data and os.access(target, os.X_OK)
    except OSError:
        current = False
    if not current and not args.dry_run:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    here = node.local_node(paths, args.environ)
    others = [] if st.shared else [n for n in (st.nodes or node.cluster_nodes(paths)) if n != here]
    result = {"volume": volume, "path": target, "node": here, "shared": st.shared,
              "changed": not current, "dry-run": args.dry_run,
              "lists-snippets": "snippets" in st.content, "install-also-on": others}
    if args.output_format != "text":
        _dump(result, args.output_format, out)
        return 0
    state_word = ("up to date" if current else "would be installed" if args.dry_run else "installed")
    out.write(f"{target}: {state_word} ({volume})\n")
    if "snippets" not in st.content:
        out.write(f"note: storage {st.id} does not list content 'snippets': guests can use the script, "
                  "the GUI does not show it (pvesm set " + st.id + " --content <...>,snippets)\n")
    if others:
        out.write(f"{st.id} is local to each node: run 'pve-microseg hookscript install --storage {st.id}' "
                  f"on {', '.join(others)} too\n")
    out.write(f"attach it to a guest: qm set <vmid> --hookscript {volume}   (containers: pct set)\n")
    return 0


def cmd_import_legacy(args, paths, log, out):
    text = config._read(paths.legacy_config)
    if text is None:
        raise MicrosegError(f"{paths.legacy_config} does not exist: nothing to import")
    legacy = config.parse_legacy(text, paths.legacy_config)
    imported, skipped = [], []

    def change(current):
        doc = config.parse_document(current, paths.config) if current.strip() else config.Document()
        have = {b.name: b for b in doc.bridges}
        for spec in legacy:
            if spec.name in have:
                skipped.append({"bridge": spec.name, "why": f"already in {have[spec.name].path}:"
                                f"{have[spec.name].line}"})
                continue
            macs = list(dict.fromkeys(m for m, _ in spec.macs))
            ips = list(dict.fromkeys(str(ip) for ip, _ in spec.ips))
            current = yamledit.set_entry(current, ("bridges", spec.name),
                                         {"gateway-mac": macs, "gateway-ip": ips}, path=paths.config)
            imported.append(spec.name)
        return current

    result = configedit.edit(paths, change, dry_run=args.dry_run)
    if args.output_format != "text":
        _dump({"imported": imported, "skipped": skipped, "dry-run": args.dry_run,
               "diff": result.diff()}, args.output_format, out)
        return 0
    out.write(result.diff())
    for s in skipped:
        out.write(f"{s['bridge']}: not imported, {s['why']}\n")
    verb = "would import" if args.dry_run else "imported"
    out.write(f"{verb}: {', '.join(imported) or 'nothing'}\n")
    if imported and not args.dry_run:
        out.write(f"{paths.legacy_config} no longer matters for these bridges; delete it once every "
                  "node runs pve-microseg, then run 'pve-microseg apply' on each node\n")
    return 0


def _selected(args, paths, inventory):
    if (args.all or args.vnet) and args.vmids:
        raise MicrosegError("give VMIDs, or --vnet, or --all, not several")
    if args.all:
        return sorted(inventory.values(), key=lambda g: g.vmid)
    if args.vnet:
        return [g for g in sorted(inventory.values(), key=lambda g: g.vmid)
                if any(n.bridge == args.vnet for n in guests.config(paths, g).nics)]
    missing = [v for v in args.vmids if v not in inventory]
    if missing:
        raise MicrosegError(f"no guest {', '.join(map(str, missing))} in this cluster (/etc/pve/.vmlist)")
    if not args.vmids:
        raise MicrosegError("name the guests: VMID..., --vnet VNET or --all")
    return [inventory[v] for v in args.vmids]


def cmd_guest(args, paths, log, out):
    inventory = guests.vmlist(paths)
    if args.action == "sync":
        import io
        logs = {}
        for vmid in args.vmids:
            if vmid not in inventory:
                raise MicrosegError(f"no guest {vmid} in this cluster (/etc/pve/.vmlist)")
            buf = out if args.output_format == "text" else io.StringIO()
            hook = guesthook.Hook(vmid, "pre-start", args.environ, paths, buf, sys.stderr,
                                  owner_node=inventory[vmid].node)
            hook.pre_start(hook.config())
            if buf is not out:
                logs[vmid] = [line.removeprefix(guesthook.PREFIX) for line in buf.getvalue().splitlines()]
        if args.output_format != "text":
            _dump({"synced": [{"vmid": v, "log": lines} for v, lines in logs.items()]}, args.output_format, out)
        return 0
    if os.geteuid() != 0 and not args.dry_run:
        raise MicrosegError("only root@pam may set hookscripts: run this as root on a cluster node")
    ours = f"{args.storage}:snippets/{paths.hookscript.name}"
    pvesh = Pvesh(binary=str(paths.pvesh), dry_run=args.dry_run, env=args.environ)
    settings_of = config.load(paths, sdn.load(paths)).guests
    rows, failed = [], False
    for g in _selected(args, paths, inventory):
        try:
            rows.append((g, _attach_one(args, paths, pvesh, g, ours, settings_of.get(g.vmid))))
        except MicrosegError as e:
            rows.append((g, f"FAILED: {e}"))
            failed = True
    if args.output_format != "text":
        _dump({"guests": [{"vmid": g.vmid, "node": g.node, "type": g.type, "result": r} for g, r in rows],
               "pvesh": [str(c) for c in pvesh.calls if c.verb != "get"], "dry-run": args.dry_run},
              args.output_format, out)
        return 1 if failed else 0
    for call in (c for c in pvesh.calls if c.verb != "get"):
        out.write(("would run: " if args.dry_run else "ran: ") + str(call) + "\n")
    for g, r in rows:
        out.write(f"{g.vmid} ({g.type} on {g.node}): {r}\n")
    st = storage.load(paths).get(args.storage)
    if args.action == "attach" and st is not None and not st.shared:
        nodes = sorted({g.node for g, r in rows if r.startswith("attached")})
        if nodes:
            out.write(f"the hookscript must be installed on {', '.join(nodes)} "
                      f"('pve-microseg hookscript install --storage {args.storage}' there)\n")
    return 1 if failed else 0


def is_ours(volume, paths):
    """Our hookscript, on whichever storage it was installed."""
    return bool(volume) and volume.endswith(f":snippets/{paths.hookscript.name}")


def _attach_one(args, paths, pvesh, g, ours, settings):
    current = guests.config(paths, g).hookscript
    chained = settings.chain if settings else None
    if args.action == "attach":
        if current == ours:
            return "already attached"
        if is_ours(current, paths):
            pvesh.set(g.api_path, hookscript=ours)          # another storage: just point at this one
            return f"attached (was {current})"
        if current and chained and chained != current:
            raise MicrosegError(f"its hookscript {current} would replace the chained {chained} recorded in "
                                f"{paths.config}; detach first or edit guests: {g.vmid}: chain:")
        recorded = None
        if current and chained != current:
            recorded = configedit.edit(paths, lambda t: yamledit.set_entry(
                t, ("guests", str(g.vmid)), {"chain": current}, merge=True, path=paths.config),
                dry_run=args.dry_run)
        try:
            pvesh.set(g.api_path, hookscript=ours)
        except MicrosegError:
            if recorded is not None and recorded.changed and not args.dry_run:
                configedit.edit(paths, lambda t: recorded.old)
            raise
        return f"attached{f' (its hookscript {current} now runs after ours)' if current else ''}"
    if not is_ours(current, paths):
        return f"not attached (hookscript: {current or 'none'})"
    if chained:
        pvesh.set(g.api_path, hookscript=chained)
        configedit.edit(paths, lambda t: _drop_chain(t, g.vmid, paths), dry_run=args.dry_run)
        return f"detached, {chained} restored"
    pvesh.set(g.api_path, delete="hookscript")
    return "detached"


def cmd_vnet(args, paths, log, out):
    pvesh = Pvesh(binary=str(paths.pvesh), dry_run=args.dry_run, env=args.environ)
    action = vnetcmd.enable if args.action == "enable" else vnetcmd.disable
    report = action(paths, pvesh, args)
    calls = [str(c) for c in pvesh.calls if c.verb != "get"]
    if args.output_format != "text":
        _dump({"vnet": args.vnet, "action": args.action, "dry-run": args.dry_run, "pvesh": calls,
               "notes": report}, args.output_format, out)
        return 0
    for c in calls:
        out.write(("would run: " if args.dry_run else "ran: ") + c + "\n")
    for line in report:
        out.write(line + "\n")
    if not calls and not report:
        out.write(f"{args.vnet}: nothing to change\n")
    return 0


def cmd_status(args, paths, log, out):
    if args.local:
        data = status.local(paths, Nft)
        if "error" in data:
            if args.output_format != "text":
                _dump(data, args.output_format, out)
            else:
                out.write(f"{data['node']}: {data['error']}\n")
            return 9
        if args.output_format == "text":
            for name, b in sorted(data["bridges"].items()):
                out.write(f"{name}: {'present' if b['present'] else 'not present'}, "
                          f"{'rules loaded' if b['rules'] else 'no rules'}\n")
        else:
            _dump(data, args.output_format, out)
        bad = any(b["present"] and not b["rules"] for b in data["bridges"].values())
        return 9 if bad else 0
    data = status.cluster(paths, Nft, args.timeout)
    if args.output_format != "text":
        _dump(data, args.output_format, out)
        return 9 if data["problems"] else 0
    out.write(f"nodes: {', '.join(f'{n} {s}' for n, s in data['nodes'].items())}\n")
    for b in data["bridges"]:
        fw = b.get("firewall")
        fwtext = "" if fw is None else (f"; VNet firewall {'on' if fw['enable'] else 'off'}, "
                                        f"policy {fw['policy_forward']}, {fw['our-rules']} pve-microseg rules")
        out.write(f"{b['bridge']}: " + ", ".join(f"{n} {s}" for n, s in b["nodes"].items()) + fwtext + "\n")
    if data["unmanaged-vnets"]:
        out.write(f"SDN VNets pve-microseg does not manage: {', '.join(data['unmanaged-vnets'])} "
                  "('pve-microseg vnet enable <vnet>' to isolate their guests)\n")
    ok = sum(1 for r in data["guests"] if not r["problems"])
    out.write(f"guests on managed bridges: {len(data['guests'])}, protected: {ok}\n")
    for p in data["problems"]:
        out.write(f"PROBLEM {p}\n")
    if not data["problems"]:
        out.write("everything checked is protected\n")
    return 9 if data["problems"] else 0


def cmd_check(args, paths, log, out):
    files, nft_nodes = [], []
    cluster = paths.firewall_dir / "cluster.fw"
    if cluster.exists():
        files.append(("cluster.fw", pmxcfs.read_file(cluster), "cluster"))
    nodes = node.cluster_nodes(paths)
    for n in nodes:
        host = paths.pve_dir / "nodes" / n / "host.fw"
        text = pmxcfs.read_file(host)
        if text:
            files.append((f"nodes/{n}/host.fw", text, "host"))
        if fwfile.parse(text).option("nftables") == "1":
            nft_nodes.append(n)
    for f in sorted(paths.firewall_dir.glob("*.fw")) if paths.firewall_dir.is_dir() else []:
        if f.name != "cluster.fw" and f.stem.isdigit():
            files.append((f"firewall/{f.name}", pmxcfs.read_file(f), "guest"))
    vnet_dir = paths.pve_dir / "sdn" / "firewall"
    for f in sorted(vnet_dir.glob("*.fw")) if vnet_dir.is_dir() else []:
        files.append((f"sdn/firewall/{f.name}", pmxcfs.read_file(f), "vnet"))
    findings = fwlint.lint_cluster(files, nft_nodes, nodes)
    bad = [f for f in findings if f.severity in ("error", "warning")]
    if args.output_format != "text":
        _dump({"files": [n for n, _, _ in files], "findings": [
            {"file": f.file, "line": f.line, "severity": f.severity, "message": f.message} for f in findings]},
            args.output_format, out)
        return 10 if bad else 0
    for f in findings:
        out.write(str(f) + "\n")
    out.write(f"{len(files)} file(s) checked: {sum(f.severity == 'error' for f in findings)} error(s), "
              f"{sum(f.severity == 'warning' for f in findings)} warning(s), "
              f"{sum(f.severity == 'info' for f in findings)} note(s)\n")
    return 10 if bad else 0


def cmd_teardown(args, paths, log, out):
    here = node.local_node(paths, args.environ)
    try:
        cfg = config.load(paths, sdn.load(paths))
        managed = {b.name for b in cfg.bridges}
    except MicrosegError as e:
        log.warning(f"cannot read the configuration ({e}); guests are not named")
        managed = set()
    exposed = []
    for g in sorted(guests.vmlist(paths).values(), key=lambda g: g.vmid):
        if g.node != here:
            continue
        try:
            nics = [n for n in guests.config(paths, g).nics if n.bridge in managed]
        except MicrosegError:
            continue
        if nics:
            exposed.append({"vmid": g.vmid, "type": g.type, "nics": [f"{n.key}@{n.bridge}" for n in nics]})
    if not args.dry_run:
        reconcile.teardown(paths, Nft())
    if args.output_format != "text":
        _dump({"node": here, "dry-run": args.dry_run, "removed": not args.dry_run,
               "guests-without-l2-isolation": exposed}, args.output_format, out)
        return 0
    out.write(("would remove" if args.dry_run else "removed") + f" the L2 rules of {here}\n")
    for g in exposed:
        out.write(f"guest {g['vmid']} ({g['type']}, {', '.join(g['nics'])}) "
                  f"{'would lose' if args.dry_run else 'lost'} its L2 isolation\n")
    return 0


def _drop_chain(text, vmid, paths):
    doc = config.parse_document(text, paths.config)
    g = doc.guests.get(vmid)
    if g is None or g.chain is None:
        return text
    if not g.addresses and not g.policy_in:
        return yamledit.remove_entry(text, ("guests", str(vmid)), path=paths.config)
    fields = {f"net{i}": list(a) for i, a in g.addresses.items()}
    if g.policy_in:
        fields["policy-in"] = g.policy_in
    return yamledit.set_entry(text, ("guests", str(vmid)), fields, path=paths.config)


def _warn_environment(source, paths, log):
    for w in source.warnings:
        log.warning(w)
    ok, why = node.ifupdown2_runs_scripts(paths)
    if ok is False or ok is None:
        log.warning(why)


COMMANDS = {"apply": cmd_apply, "show": cmd_show, "hookscript": cmd_hookscript,
            "import-legacy": cmd_import_legacy, "guest": cmd_guest, "vnet": cmd_vnet,
            "status": cmd_status, "check": cmd_check, "teardown": cmd_teardown}


def main(argv=None, environ=None, out=None):
    args = build_parser().parse_args(argv)
    args.environ = dict(os.environ if environ is None else environ)    # for pvesh and the hookscript
    paths = Paths.from_env(environ)
    log = Log(use_syslog=False)
    out = sys.stdout if out is None else out
    try:
        return COMMANDS[args.command](args, paths, log, out)
    except MicrosegError as e:
        log.error(str(e))
        return e.exit_code
