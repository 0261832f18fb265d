"""Render a flow's Result: json, json-pretty, yaml (as pvesh does), or text.

One text renderer per command; each reads only the Result's data, so the
text and the JSON always say the same thing.
"""

import json

from ..policy import nftsyntax, ruleset

FORMATS = ("text", "json", "json-pretty", "yaml")


def dump(data, fmt):
    """`data` in a machine format, as one string."""
    if fmt == "json":
        return json.dumps(data, sort_keys=True) + "\n"
    if fmt == "json-pretty":
        return json.dumps(data, sort_keys=True, indent=4) + "\n"
    import yaml                                 # only when asked for: it costs ~15 ms
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False)


def _calls(data):
    verb = "would run: " if data["dry-run"] else "ran: "
    return [verb + c for c in data["pvesh"]]


# ------------------------------------------------------------------ apply, show, teardown

def _diff(changes):
    lines = []
    for c in changes:
        if c["change"] == "added":
            lines.append(f"+ {c['bridge']}: gateway {', '.join(c['gateway-mac'])}  {' '.join(c['gateway-ip'])}")
        elif c["change"] == "changed":
            lines.append(f"~ {c['bridge']}: {c['field']} {' '.join(c['before']) or '-'} -> "
                         f"{' '.join(c['after']) or '-'}")
        else:
            lines.append(f"- {c['bridge']}")
    return lines or ["(no changes)"]


def apply(data, diff=False):
    dry = not data["applied"]
    lines = _diff(data["changes"]) if diff else []
    names = ", ".join(b["bridge"] for b in data["bridges"]) or "none"
    lines.append(f"{'would load' if dry else 'loaded'}: {len(data['bridges'])} managed bridge(s): {names}")
    if data["removed"]:
        lines.append(f"{'would remove' if dry else 'removed'}: {', '.join(data['removed'])}")
    if data["not-on-this-node"]:
        lines.append(f"not on this node (yet): {', '.join(data['not-on-this-node'])}: their rules wait, inert, "
                     "until the bridge exists")
    lines.append(f"{'would bind' if dry else 'bound'}: {len(data['bound-ports'])} guest port(s) of this node "
                 "(port security)")
    if dry:
        lines.append("dry run: the kernel accepted the transaction; nothing was changed")
    return lines


def _any(values):
    return "any" if values is None else ", ".join(values) or "none"


def _bindings(data):
    lines = []
    if data["bindings"]:
        lines.append("port security of this node's guest ports (source MAC, IPv4, IPv6 they may use):")
    for b in data["bindings"]:
        lines.append(f"  {b['port']:<12} guest {b['vmid']} {b['nic']} on {b['bridge']} ({b['port-security']}): "
                     f"MAC {_any([b['mac']] if b['mac'] else None)}; IPv4 {_any(b['ipv4'])}; IPv6 {_any(b['ipv6'])}")
    lines += [f"  problem: {w}" for w in data["binding-warnings"]]
    return lines


_LOG_ON = ("drops are logged (log: on): at most one kernel log line a minute per guest port and class, "
           "'journalctl -k --grep pve-microseg'")


def show(data):
    if not data["bridges"]:
        return [f"no managed bridges (configure them in {data['config']})"]
    lines = [f"managed bridges ({data['origin']} configuration):"]
    for b in data["bridges"]:
        where = "on this node" if b["present"] else "not on this node"
        rules = "rules loaded" if b["loaded"] else "no rules loaded"
        kind = "vnet" if b["vnet"] else "bridge"
        lines.append(f"  {b['bridge']:<15} {kind:<6} {where:<17} {rules:<16} from {b['source']}")
        if b.get("zone"):
            lines.append(f"    SDN zone: {b['zone']} ({b['zone-type']})"
                         + ("; the node is the gateway" if b.get("node-is-gateway") else ""))
        lines.append(f"    gateway MAC: {', '.join(b['gateway-mac']) or 'none needed (the node itself)'}")
        ipv4 = [ip for ip in b["gateway-ip"] if ":" not in ip]
        ipv6 = [ip for ip in b["gateway-ip"] if ":" in ip]
        if ipv4:
            lines.append(f"    gateway IPv4: {', '.join(ipv4)}")
        if ipv6:
            lines.append(f"    gateway IPv6: {', '.join(ipv6)}")
        if b.get("intra-vnet-routing") == "allow":
            lines.append("    guest -> another address of its subnet through the gateway: allowed "
                         "(intra-vnet-routing: allow; the router decides)")
        elif b.get("subnets"):
            lines.append(f"    guest -> another address of {', '.join(b['subnets'])} through the gateway: dropped")
        else:
            lines.append("    guest -> another guest through the gateway: NOT prevented (no subnet known: "
                         "name them with subnets: in microseg.yaml)")
    lines.append("guests (tap*, veth*, fwpr* ports) reach only these gateways; "
                 "--nft or --output-format json for the nftables ruleset")
    if data.get("log"):
        lines.append(_LOG_ON)
    return lines + _bindings(data)


def show_nft(data):
    # as the nftables the transaction was built for lists it (1.1 binds the ND target)
    return nftsyntax.table([data["nftables"]], ruleset.FAMILY, ruleset.TABLE,
                           meters_as_sets=ruleset.binds_nd_target(data["nftables"])).splitlines()


def ports(data):
    lines = []
    for p in data["ports"]:
        b = p["binding"]
        if b is None:
            lines.append(f"{p['port']}: {'unbound' if data['action'] == 'unbind' else 'no binding: closed'}")
        else:
            lines.append(f"{p['port']}: {'would bind' if data['dry-run'] else 'bound'} to guest {b['vmid']} "
                         f"{b['nic']} ({b['port-security']}): MAC {_any([b['mac']] if b['mac'] else None)}; "
                         f"IPv4 {_any(b['ipv4'])}; IPv6 {_any(b['ipv6'])}")
    return lines


def teardown(data):
    dry = data["dry-run"]
    lines = [("would remove" if dry else "removed") + f" the L2 rules of {data['node']}"]
    for g in data["guests-without-l2-isolation"]:
        lines.append(f"guest {g['vmid']} ({g['type']}, {', '.join(g['nics'])}) "
                     f"{'would lose' if dry else 'lost'} its L2 isolation")
    for g in data["guests-with-hookscript"]:
        tool = "pct" if g["type"] == "lxc" else "qm"
        restore = (f"'{tool} set {g['vmid']} --hookscript {g['chain']}' (the script it chained)"
                   if g["chain"] else f"'{tool} set {g['vmid']} --delete hookscript'")
        lines.append(f"guest {g['vmid']} ({g['type']}) still has the hookscript {g['hookscript']} attached: "
                     f"without pve-microseg its start fails (fail-closed) or goes on unprotected (fail-open); "
                     f"detach it: {restore}")
    return lines


# ------------------------------------------------------------------ hookscript, guests, legacy

def hookscript_install(data):
    state = ("up to date" if not data["changed"] else "would be installed" if data["dry-run"] else "installed")
    st = data["storage"]
    lines = [f"{data['path']}: {state} ({data['volume']})"]
    if not data["lists-snippets"]:
        lines.append(f"note: storage {st} does not list content 'snippets': guests can use the script, "
                     f"the GUI does not show it (pvesm set {st} --content <...>,snippets)")
    if data["install-also-on"]:
        lines.append(f"{st} is local to each node: run 'pve-microseg hookscript install --storage {st}' "
                     f"on {', '.join(data['install-also-on'])} too")
    lines.append(f"attach it to a guest: qm set <vmid> --hookscript {data['volume']}   (containers: pct set)")
    return lines


def guests(data):
    lines = _calls(data)
    lines += [f"{g['vmid']} ({g['type']} on {g['node']}): {g['result']}" for g in data["guests"]]
    if data["install-on"]:
        lines.append(f"the hookscript must be installed on {', '.join(data['install-on'])} "
                     f"('pve-microseg hookscript install --storage {data['storage']}' there)")
    return lines


def guest_sync(data, prefix):
    lines = [prefix + line for g in data["synced"] for line in g["log"]]
    failed = data.get("failed") or []
    for f in failed:
        where = f" ({f['type']} on {f['node']})" if f["node"] else ""
        lines.append(f"{prefix}guest {f['vmid']}{where}: NOT synced: {f['error']}")
    if failed:
        total = len(failed) + len(data["synced"])
        lines.append(f"{prefix}synced {len(data['synced'])} of {total} guest(s); not synced: "
                     + ", ".join(str(f["vmid"]) for f in failed))
    return lines


def import_legacy(data):
    lines = data["diff"].splitlines()
    lines += [f"{s['bridge']}: not imported, {s['why']}" for s in data["skipped"]]
    lines.append(f"{'would import' if data['dry-run'] else 'imported'}: {', '.join(data['imported']) or 'nothing'}")
    if data["imported"] and not data["dry-run"]:
        lines.append(f"{data['legacy']} no longer matters for these bridges; delete it once every node runs "
                     "pve-microseg, then run 'pve-microseg apply' on each node")
    return lines


def vnet(data):
    lines = _calls(data) + list(data["notes"])
    applied = data.get("sdn-apply")
    lines += [f"  {n['node']}: {n['detail']}" for n in (applied or {}).get("nodes", [])]
    if not data["pvesh"] and not data["notes"]:
        lines.append(f"{data['vnet']}: nothing to change")
    return lines


# ------------------------------------------------------------------ status, check

def status_local(data):
    pfw = [f"proxmox-firewall: {data['proxmox-firewall']}"] if "proxmox-firewall" in data else []
    if "error" in data:
        return [f"{data['node']}: {data['error']}"] + pfw
    lines = [f"{name}: {'present' if b['present'] else 'not present'}, "
             f"{'rules loaded' if b['rules'] else 'no rules'}" for name, b in sorted(data["bridges"].items())]
    nd = [] if "nd-target-bound" not in data else [
        "IPv6 neighbour advertisements: target bound to the port" if data["nd-target-bound"] else
        "IPv6 neighbour advertisements: target NOT bound to the port (nftables < 1.1)"]
    return lines + [f"{u['port']} on {u['bridge']}: no port-security binding, sends nothing"
                    for u in data.get("unbound-ports", [])] + pfw + nd


def status(data):
    lines = [f"nodes: {', '.join(f'{n} {s}' for n, s in data['nodes'].items())}"]
    for b in data["bridges"]:
        fw = b.get("firewall")
        fwtext = "" if fw is None else (f"; VNet firewall {'on' if fw['enable'] else 'off'}, "
                                        f"policy {fw['policy_forward']}, {fw['our-rules']} pve-microseg rules")
        lines.append(f"{b['bridge']}: " + ", ".join(f"{n} {s}" for n, s in b["nodes"].items()) + fwtext)
    backends = data.get("firewall-backends") or {}
    if backends:
        lines.append("proxmox-firewall: " + ", ".join(
            f"{n} {b['proxmox-firewall']}" + (" (nftables: 1)" if b["nftables"] else "")
            for n, b in backends.items()))
    open_nd = sorted(n for n, bound in (data.get("nd-target-bound") or {}).items() if not bound)
    if open_nd:
        lines.append(f"note: on {', '.join(open_nd)} (nftables < 1.1, Debian 12) a neighbour advertisement's "
                     "target is not bound to the port: a guest can claim another guest's IPv6 address to the "
                     "gateway (nftables 1.1, Debian 13 / PVE 9, binds it)")
    if data.get("drop-log"):
        lines.append(_LOG_ON)
    if data["unmanaged-vnets"]:
        lines.append(f"SDN VNets pve-microseg does not manage: {', '.join(data['unmanaged-vnets'])} "
                     "('pve-microseg vnet enable <vnet>' to isolate their guests)")
    ok = sum(1 for r in data["guests"] if not r["problems"])
    lines.append(f"guests on managed bridges: {len(data['guests'])}, protected: {ok}")
    lines += [f"PROBLEM {p}" for p in data["problems"]]
    if not data["problems"]:
        lines.append("everything checked is protected")
    return lines + (_drops(data) if "drops" in data else [])


def _drops(data):
    """What was dropped, top offenders first, one line per node, port and class."""
    rows = data["drops"]
    lines = ["drops (per guest port and class, since the rules were loaded):"]
    if not rows:
        lines.append("  none")
    for r in rows:
        who = f"{r['vmid']}/{r['nic']}" if r["vmid"] is not None else "(not a guest)"
        lines.append(f"  {r['node']}: {who} {r['port']} on {r['bridge'] or '?'}: {r['class']}: "
                     f"{r['packets']} packets, {r['bytes']} bytes")
    if data.get("drops-unknown"):
        lines.append(f"  not known from: {', '.join(data['drops-unknown'])}")
    return lines


def check(data):
    findings = data["findings"]
    lines = [f"{f['file']}:{f['line']}: {f['severity']}: {f['message']}" for f in findings]

    def count(severity):
        return sum(f["severity"] == severity for f in findings)
    lines.append(f"{len(data['files'])} file(s) checked: {count('error')} error(s), {count('warning')} warning(s), "
                 f"{count('info')} note(s)")
    return lines


def metrics(data):
    """The exposition itself on standard output; nothing once written to a
    textfile (the timer's journal stays quiet)."""
    return [] if data.get("textfile") else data["text"].splitlines()


def graph(data):
    if "dot" in data:
        return data["dot"].splitlines()
    bridges = ", ".join(data["bridges"]) or "no managed bridge"
    lines = [f"wrote {data['output']} ({data['format']}): {bridges}, {data['guest-nics']} guest NIC(s)"]
    if data["unbound"]:
        lines.append(f"{data['unbound']} guest port(s) unbound or closed (orange): they send nothing")
    if data["problems"]:
        lines.append(f"{data['problems']} problem(s) found: 'pve-microseg status' lists them")
    return lines


# ------------------------------------------------------------------ explain

def explain(data):
    lines = [f"{data['from']['label']} -> {data['to']['label']} ({data['proto']}): {data['frame-summary']}"]
    n = 0
    for hop in data["hops"]:
        out = hop["out"] or "the host itself"
        lines.append(f"{hop['node']} {hop['bridge']}: in {hop['in']}, out {out} ({hop['ruleset']} ruleset)")
        for hook in hop["hooks"]:
            if not hook["steps"]:
                lines.append(f"  {hook['hook']}: no rule of ours for this bridge -> accept")
                continue
            lines.append(f"  {hook['hook']}:")
            for i, step in enumerate(hook["steps"]):
                n += 1
                mark = "=>" if hook["decided-by"] == i else ("+ " if step["matched"] else "  ")
                action = f" [{step['action']}]" if step["action"] else ""
                lines.append(f"  {mark}{n:3} {step['chain']}#{step['position']}{action}: {step['rule']}")
            lines.append(f"     -> {hook['verdict']}" + ("" if hook["decided-by"] is not None else " (policy)"))
    for hop in data["not-crossed"]:
        lines.append(f"{hop['node']} {hop['bridge']}: not reached")
    if data.get("note"):
        lines.append(data["note"])
    verdict = "ACCEPTED by pve-microseg" if data["verdict"] == "accept" else "DROPPED by pve-microseg"
    if data["decided-by"]:
        verdict += f": {data['decided-by']['chain']}#{data['decided-by']['position']} " \
                   f"\"{data['decided-by']['comment'] or '(no comment)'}\""
    lines.append(verdict)
    lines += ["in the path, not evaluated:"] + [f"  - {x}" for x in data["not-evaluated"]]
    lines += ["cannot see:"] + [f"  - {x}" for x in data["cannot-see"]]
    return lines
