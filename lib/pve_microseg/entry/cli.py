"""The `pve-microseg` command line (pvesh/qm conventions).

Each command translates its arguments into one flow call and renders the
Result (entry/render.py); nothing here decides or touches the system.
"""

import argparse
import errno
import os
import sys

from .. import __version__
from ..edges import node
from ..edges.log import Log
from ..edges.nft import Nft
from ..edges.paths import Paths
from ..edges.pvesh import Pvesh
from ..flows import (check, explain, graph, guesthook, guests, import_legacy, install, metrics, ports, reconcile,
                     status, vnet)
from ..model.errors import ExitCode, MicrosegError, NftablesError
from ..parse import addresses
from ..policy.vnetfw import PRESETS
from . import args as values, render
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
  PVE_MICROSEG_DOT            graphviz, for 'graph'        (/usr/bin/dot)
  PVE_MICROSEG_TEXTFILE_DIR   'metrics --textfile' default (/var/lib/prometheus/node-exporter)

exit status: 0 ok, 1 error (also: not run as root), 2 invalid configuration or
usage (nothing changed), 3 nftables refused the change (nothing changed),
4 nftables unavailable, 5 a guest's firewall file cannot be used as it is (left
unchanged), 6 /etc/pve cannot be written now (no quorum, lock timeout, size
limit), 7 pvesh refused a call, 8 a prerequisite of 'vnet enable' is missing,
9 'status' found something unprotected, 10 'check' found errors or warnings,
11 'vnet enable --apply': a node's network reload failed.
With --output-format json, json-pretty or yaml an error is also written to
standard output in that format: {"error": {"message": ..., "exit-code": ...}}.
"""


def _argument(check):
    """An argparse type from a check of entry/args.py (ValueError -> usage error)."""
    def convert(text):
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = check.__name__
    return convert


_seconds = _argument(values.seconds)         # a --timeout: finite, above 0, at most a day
_vmid = _argument(values.vmid)
_mac = _argument(addresses.parse_mac)         # a gateway's MAC: unicast, not 00:00:00:00:00:00
_picture = _argument(values.picture)          # graph --output: a .dot, .gv, .svg or .png file name
_textfile = _argument(values.textfile)        # metrics --textfile: a .prom file name


class _UsageExit(SystemExit):
    """argparse's usage error (exit status 2), with its message kept for a
    machine-readable error on standard output."""

    def __init__(self, message):
        super().__init__(int(ExitCode.CONFIG))
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        message = f"{self.prog}: error: {message}"
        print(message, file=sys.stderr)
        raise _UsageExit(message)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _output_format(parser):
    parser.add_argument("--output-format", choices=FORMATS, default="text",
                        help="text (default), json (one line), json-pretty or yaml, as pvesh")


def build_parser():
    p = _Parser(prog="pve-microseg", description=DESCRIPTION, epilog=EPILOG,
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
    ve.add_argument("--gateway-mac", action="append", metavar="MAC", type=_mac,
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
    st.add_argument("--drops", action="store_true",
                    help="also what the rules dropped on every node, per guest port (VMID and NIC) and "
                         "class, top offenders first")
    st.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for each node (default 5)")
    _output_format(st)

    me = sub.add_parser(
        "metrics", formatter_class=_formatter,
        help="this node's state for Prometheus (node_exporter's textfile collector)",
        description="Print this node's state in the Prometheus text format: managed bridges present, "
                    "with rules loaded or unprotected, guest ports protected or unbound, bindings, "
                    "what the rules dropped per guest port and class, the configuration's digest, and "
                    "pve_microseg_up / pve_microseg_textfile_timestamp_seconds. With --textfile, write it "
                    "there atomically instead (mode 0644), as the package's pve-microseg-metrics.timer "
                    "does every minute; a refresh that fails writes pve_microseg_up 0 and exits non-zero. "
                    "Needs root (it reads the node's nftables), like 'status --local'.")
    me.add_argument("--textfile", nargs="?", type=_textfile, const=True, default=None, metavar="PATH",
                    help="write PATH (ending in .prom) instead of standard output; without PATH "
                         "/var/lib/prometheus/node-exporter/pve_microseg.prom")
    me.set_defaults(output_format="text")

    gr = sub.add_parser(
        "graph", formatter_class=_formatter,
        help="draw who can reach whom on the managed bridges (graphviz DOT, SVG or PNG)",
        description="A picture of what 'status' finds: per managed bridge, its guests in one box per "
                    "node, an edge from each guest NIC to the gateway (green: allowed; orange: its port "
                    "is unbound or closed and sends nothing), one note per node for guest <-> guest "
                    "(blocked by the L2 rules, or OPEN in red where the bridge has no rules), the uplink, "
                    "and a legend of what is blocked and why. Without --output the DOT text is printed. "
                    ".svg and .png are drawn by graphviz's dot (package graphviz); .dot needs nothing.")
    gr.add_argument("--vnet", help="only this managed VNet or bridge")
    gr.add_argument("--output", type=_picture, metavar="FILE",
                    help="write FILE.dot (or .gv), FILE.svg or FILE.png (atomically)")
    gr.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for each node (default 5)")
    _output_format(gr)

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

    ex = sub.add_parser(
        "explain", formatter_class=_formatter,
        help="why can A (not) reach B: the rules a frame meets, in order, and the verdict",
        description="Build the frame FROM sends to TO and run it through pve-microseg's rules on "
                    "every bridge it crosses, as the kernel would (prerouting, then forward): each "
                    "rule met, in order, with its comment, and the rule that decided. FROM and TO: "
                    "vm:<vmid>[/net<n>], ct:<vmid>[/net<n>] (net0 by default), gateway (of the "
                    "guest's bridge), or an address (a guest's, a gateway's, or a host beyond the "
                    "gateway). Evaluates the ruleset 'apply' would load on each node (no kernel "
                    "needed), or with --loaded this node's table as loaded. Also names the Proxmox "
                    "features in the path it does not evaluate (guest firewall and ipfilter, VNet "
                    "firewall) and what it cannot see. Changes nothing.")
    ex.add_argument("source", metavar="FROM")
    ex.add_argument("target", metavar="TO")
    ex.add_argument("--proto", choices=("icmp", "tcp", "udp", "arp", "nd", "dhcp", "ra"), default="icmp",
                    help="icmp (echo request, the default), tcp, udp, arp (request for TO's IPv4), "
                         "nd (neighbour solicitation for TO's IPv6), dhcp (FROM as client, or as server "
                         "when FROM is the gateway), ra (router advertisement from FROM)")
    fam = ex.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 (default when both have one)")
    fam.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6")
    ex.add_argument("--port", type=_argument(values.port), default=None,
                    help="destination port for tcp/udp (default 443 for tcp, 53 for udp)")
    ex.add_argument("--loaded", action="store_true",
                    help="evaluate this node's loaded table (nft) instead of the desired ruleset")
    _output_format(ex)

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
    return status.cluster(paths, Nft, args.timeout, with_drops=args.drops), render.status


def cmd_metrics(args, paths, environ):
    textfile = paths.textfile if args.textfile is True else args.textfile
    return metrics.metrics(paths, Nft, textfile), render.metrics


def cmd_graph(args, paths, environ):
    return graph.graph(paths, Nft, vnet=args.vnet, output=args.output, timeout=args.timeout), render.graph


def cmd_check(args, paths, environ):
    return check.check(paths), render.check


def cmd_explain(args, paths, environ):
    return explain.explain(paths, args.source, args.target, args.proto, args.family, args.port, args.loaded,
                           Nft, environ), render.explain


def cmd_port(args, paths, environ):
    return ports.change(paths, Nft, args.action, args.ports, environ, args.dry_run), render.ports


def cmd_teardown(args, paths, environ):
    return reconcile.teardown(paths, Nft, environ, dry_run=args.dry_run), render.teardown


COMMANDS = {"apply": cmd_apply, "show": cmd_show, "hookscript": cmd_hookscript,
            "import-legacy": cmd_import_legacy, "guest": cmd_guest, "vnet": cmd_vnet,
            "status": cmd_status, "check": cmd_check, "explain": cmd_explain, "port": cmd_port,
            "teardown": cmd_teardown, "graph": cmd_graph, "metrics": cmd_metrics}


def _requested_format(argv):
    """The --output-format of a command line argparse could not read (for
    its usage error); 'text' when none is given."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name == "--output" and next((a for a in argv if not a.startswith("-")), None) == "graph":
            continue                                                   # graph's own --output FILE
        if len(name) > 3 and "--output-format".startswith(name):      # argparse takes a unique prefix
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            return value if value in FORMATS else "text"
    return "text"


def _caused_by_permission(e):
    """Whether an error comes from EACCES/EPERM (seen through its causes)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            return True
        if isinstance(e, NftablesError) and "Operation not permitted" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


NEEDS_ROOT = "pve-microseg needs root (it reads /etc/pve and the node's nftables): run it as root"


def _error(e):
    """(message, exit status) for any exception a command ends with."""
    if isinstance(e, MicrosegError):
        message, code = str(e), int(e.exit_code)
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        message, code = f"{where}{e.strerror or e}", int(ExitCode.ERROR)
    else:
        return (f"internal error {e.__class__.__name__}: {e} (please report it, with the lines "
                "logged to the journal)"), int(ExitCode.ERROR)
    if not node.is_root() and _caused_by_permission(e):
        return f"{message}\n{NEEDS_ROOT}", int(ExitCode.ERROR)
    return message, code


def _journal(e):
    """The traceback of an internal error, for the journal only (never the terminal)."""
    import io
    import traceback
    try:
        Log(stream=io.StringIO()).error("".join(traceback.format_exception(e)))
    except Exception:           # noqa: BLE001 -- the journal is a courtesy
        pass


def main(argv=None, environ=None, out=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    out = sys.stdout if out is None else out
    log = Log(use_syslog=False)
    try:
        args = build_parser().parse_args(argv)
    except _UsageExit as e:
        fmt = _requested_format(argv)
        if fmt != "text":
            out.write(render.dump({"error": {"message": e.message, "exit-code": e.code}}, fmt))
        return e.code
    fmt = args.output_format
    try:
        environ = dict(os.environ if environ is None else environ)     # for pvesh and the hookscript
        paths = Paths.from_env(environ)
        result, text = COMMANDS[args.command](args, paths, environ)
        for w in result.warnings:
            log.warning(w)
        body = render.dump(result.data, fmt) if fmt != "text" else \
            "".join(f"{line}\n" for line in text(result.data))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:          # noqa: BLE001 -- the last resort: never a traceback
        message, code = _error(e)
        if not isinstance(e, (MicrosegError, OSError)):
            _journal(e)
        log.error(message)
        if fmt != "text":
            data = e.to_json() if isinstance(e, MicrosegError) else {}
            data.update({"message": message, "exit-code": code})
            out.write(render.dump({"error": data}, fmt))
        return code
    try:
        out.write(body)
        out.flush()
    except BrokenPipeError:         # `pve-microseg show | head`: the reader has gone
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return int(ExitCode.ERROR)
    return int(result.exit)
