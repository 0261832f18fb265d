"""The `pve-microseg` command line (pvesh/qm conventions).

Each command translates its arguments into one flow call and renders the
Result (entry/render.py); nothing here decides or touches the system.
"""

import argparse
import os
import sys

from .. import __version__
from ..edges.log import Log
from ..edges.nft import Nft
from ..edges.paths import Paths
from ..edges.pvesh import Pvesh
from ..flows import check, guesthook, guests, import_legacy, install, ports, reconcile, status, vnet
from ..model.errors import MicrosegError
from ..parse import names
from ..policy.vnetfw import PRESETS
from . import render
from .render import FORMATS

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
  PVE_MICROSEG_DPKG_STATUS    installed packages (read)    (/var/lib/dpkg/status)

exit status: 0 ok, 1 error, 2 invalid configuration (nothing changed),
3 nftables refused the change (nothing changed), 4 nftables unavailable,
7 pvesh refused a call, 8 a prerequisite of 'vnet enable' is missing,
9 'status' found something unprotected, 10 'check' found errors or warnings,
11 'vnet enable --apply': a node's network reload failed.
"""


def _seconds(text):
    """A --timeout: a finite number of seconds above 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:          # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0 and at most 86400 seconds")
    return value


def _vmid(text):
    """A VMID as Proxmox writes it (parse/names.py)."""
    try:
        return names.vmid(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
                    "this node, and (json) the exact nftables transaction 'apply' would load. "
                    "Changes nothing.")
    s.add_argument("--nft", action="store_true",
                   help="print the table 'apply' would load in nft syntax, as 'nft list table bridge "
                        "pve_microseg' shows it once loaded (counters at zero)")
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
        ga.add_argument("vmids", nargs="*", type=_vmid, metavar="VMID")
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
    gs.add_argument("vmids", nargs="+", type=_vmid, metavar="VMID")
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
    ve.add_argument("--allow", action="append", choices=PRESETS, metavar="PRESET",
                    help=f"also let guests use: {', '.join(PRESETS)} (repeatable)")
    ve.add_argument("--apply", action="store_true",
                    help="run the SDN apply (pvesh set /cluster/sdn) and check each node's network "
                         "reload (exit 11 if one failed)")
    ve.add_argument("--timeout", type=_seconds, default=vnet.RELOAD_TIMEOUT, metavar="SECONDS",
                    help="with --apply: how long to wait for network reloads still running "
                         f"(default {vnet.RELOAD_TIMEOUT:g})")
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
    st.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for each node (default 5)")
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

    pt = sub.add_parser(
        "port", formatter_class=_formatter,
        help="bind a guest port to its NIC now, or unbind it (what the udev rule runs)",
        description="bind: give guest ports (tap<vmid>i<n>, veth<vmid>i<n>, fwpr<vmid>p<n>) of this node "
                    "the port-security binding 'apply' would give them (the NIC's MAC and known "
                    "addresses), replacing their elements in the kernel at once. unbind: remove them. "
                    "The package's udev rule runs these when a guest port appears or goes, so guests "
                    "without the hookscript are bound too; a port before its binding sends nothing.")
    psub = pt.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    for name, helptext in (("bind", "bind these ports to their NICs"), ("unbind", "remove their bindings")):
        pp = psub.add_parser(name, formatter_class=_formatter, help=helptext, description=helptext)
        pp.add_argument("ports", nargs="+", metavar="PORT")
        pp.add_argument("--dry-run", action="store_true", help="check the change with the kernel, change nothing")
        _output_format(pp)

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


# ---------------------------------------------------------------- commands
# Each returns (Result, text renderer).

def cmd_apply(args, paths, environ):
    result = reconcile.apply(paths, Nft, dry_run=args.dry_run, environ=environ)
    return result, lambda d: render.apply(d, diff=args.diff)


def cmd_show(args, paths, environ):
    return reconcile.show(paths, environ, Nft), (render.show_nft if args.nft else render.show)


def cmd_hookscript(args, paths, environ):
    return install.hookscript(paths, args.storage, args.dry_run, environ), render.hookscript_install


def cmd_import_legacy(args, paths, environ):
    return import_legacy.import_legacy(paths, args.dry_run), render.import_legacy


def cmd_guest(args, paths, environ):
    if args.action == "sync":
        result = guests.sync(paths, environ, args.vmids)
        return result, lambda d: render.guest_sync(d, guesthook.PREFIX)
    pvesh = Pvesh(binary=str(paths.pvesh), dry_run=args.dry_run, env=environ)
    selected = guests.select(paths, args.vmids, args.vnet, args.all)
    return guests.attach_or_detach(paths, pvesh, args.action, selected, args.storage, args.dry_run), render.guests


def cmd_vnet(args, paths, environ):
    pvesh = Pvesh(binary=str(paths.pvesh), dry_run=args.dry_run, env=environ)
    if args.action == "enable":
        result = vnet.enable(paths, pvesh, args.vnet, gateway_macs=args.gateway_mac or (), allow=args.allow or (),
                             apply_sdn=args.apply, enable_datacenter=args.enable_datacenter_firewall,
                             lockout_confirmed=args.i_have_console_access, dry_run=args.dry_run,
                             timeout=args.timeout)
    else:
        result = vnet.disable(paths, pvesh, args.vnet, dry_run=args.dry_run)
    return result, render.vnet


def cmd_status(args, paths, environ):
    if args.local:
        return status.local(paths, Nft), render.status_local
    return status.cluster(paths, Nft, args.timeout), render.status


def cmd_check(args, paths, environ):
    return check.check(paths), render.check


def cmd_port(args, paths, environ):
    return ports.change(paths, Nft, args.action, args.ports, environ, args.dry_run), render.ports


def cmd_teardown(args, paths, environ):
    return reconcile.teardown(paths, Nft, environ, dry_run=args.dry_run), render.teardown


COMMANDS = {"apply": cmd_apply, "show": cmd_show, "hookscript": cmd_hookscript,
            "import-legacy": cmd_import_legacy, "guest": cmd_guest, "vnet": cmd_vnet,
            "status": cmd_status, "check": cmd_check, "port": cmd_port, "teardown": cmd_teardown}


def main(argv=None, environ=None, out=None):
    args = build_parser().parse_args(argv)
    environ = dict(os.environ if environ is None else environ)     # for pvesh and the hookscript
    paths = Paths.from_env(environ)
    log = Log(use_syslog=False)
    out = sys.stdout if out is None else out
    fmt = args.output_format
    try:
        result, text = COMMANDS[args.command](args, paths, environ)
    except MicrosegError as e:
        log.error(str(e))
        if fmt != "text":
            out.write(render.dump({"error": e.to_json()}, fmt))
        return int(e.exit_code)
    for w in result.warnings:
        log.warning(w)
    out.write(render.dump(result.data, fmt) if fmt != "text" else "".join(f"{line}\n" for line in text(result.data)))
    return int(result.exit)
