"""`pve-microseg graph`: who can reach whom on a managed bridge, as Graphviz DOT (pure).

The input is what `status` found (flows/graph.py gathers it): per bridge,
its state on each node, the guests with a NIC on it, their bindings, and
which guest ports a node reported unbound.  The output is DOT text,
deterministic (sorted, ids made only from names we validated, never from a
guest's name), readable for a VNet of 50 guests:

* one cluster per node, its guests inside (in columns of COLUMN);
* one edge per guest NIC to the gateway (allowed, green), or a warning
  edge when its port is unbound or closed (it sends nothing);
* one note per node for guest <-> guest ("blocked (L2 rules)", or OPEN in
  red where the bridge has no rules there), and one edge from it to the
  uplink: frames of a guest reach the uplink only for a gateway MAC;
* a legend with what the rules block on this bridge, and why.

Every text a guest's owner can choose (the VM name, the container
hostname) goes through html() or quoted(): it can never end a label or
add DOT syntax.
"""

import re
from dataclasses import dataclass, field, replace

COLUMN = 10                 # guests per column in a node's cluster
MAX_TEXT = 63               # a name or problem longer than this is cut
MAX_PROBLEMS = 3            # problems shown per guest ('+N more' after)
MAX_ADDRESSES = 3

OK, BLOCKED, WARN, UNKNOWN = "#2e7d32", "#c62828", "#ef6c00", "#757575"
FILL_OK, FILL_WARN, FILL_BAD = "#ffffff", "#fff3e0", "#ffebee"

# states of a bridge on a node (policy/protection.py bridge_row)
PROTECTED, WAITING, NO_RULES, ABSENT, UNKNOWN_STATE = "protected", "rules waiting", "NO RULES", "not present", "unknown"


@dataclass(frozen=True)
class GuestNic:
    """One NIC of a guest on the bridge, as drawn."""

    vmid: int
    nic: int                    # the N of net<N>
    node: str
    type: str                   # qemu or lxc
    name: str = None            # VM name / container hostname: the guest owner's text
    mac: str = None
    addresses: tuple = ()       # what its port may send from (binding); () none known
    port_security: str = "mac+ip"
    closed: str = None          # why no binding is decided for it (its port sends nothing)
    unbound: bool = False       # its node reported the port without a binding
    problems: tuple = ()        # status's problems of the guest

    @property
    def warning(self):
        return bool(self.closed or self.unbound)


@dataclass(frozen=True)
class NodeView:
    """The bridge on one node: its state and the unbound ports no guest config explains."""

    name: str
    state: str
    stray_ports: tuple = ()     # unbound guest ports of a VMID/NIC not on this bridge's guests


@dataclass(frozen=True)
class BridgePicture:
    """Everything drawn for one managed bridge."""

    name: str
    vnet: bool = False
    zone: str = None
    zone_type: str = None
    node_is_gateway: bool = False
    gateway_macs: tuple = ()
    gateway_ips: tuple = ()
    port_security: str = "mac+ip"
    routed_subnets: tuple = ()  # intra-VNet routing dropped for these (str)
    firewall: str = None        # the VNet firewall in words (VNets), None for a plain bridge
    nodes: tuple = ()           # NodeView, by name
    guests: tuple = ()          # GuestNic
    problems: tuple = field(default=())


# ------------------------------------------------------------------ escaping

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _clean(text, limit=MAX_TEXT):
    """One line of printable text, at most `limit` characters."""
    text = _CONTROL.sub(" ", str(text))
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def quoted(text):
    """A DOT double-quoted string holding `text` literally: backslashes
    (label escapes such as \\N, \\G, \\l) and quotes escaped, line breaks
    and other control characters turned into spaces."""
    return '"' + _CONTROL.sub(" ", str(text)).replace("\\", "\\\\").replace('"', '\\"') + '"'


def html(text, limit=MAX_TEXT):
    """`text` as the content of an HTML-like label: one line, &<>"' as entities."""
    return (_clean(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _attrs(**kw):
    """[k=v, ...] in the order given; values quoted unless already an HTML label (<...>)."""
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        parts.append(f"{k}={v}" if isinstance(v, _Html) else f"{k}={quoted(v)}")
    return f" [{', '.join(parts)}]" if parts else ""


class _Html(str):
    """An HTML-like label built here from escaped pieces."""


def _label(lines):
    return _Html("<" + "<br/>".join(lines) + ">")


def _font(color, text):
    return f'<font color="{color}">{text}</font>'


# ------------------------------------------------------------------ ids (from validated names only)

def _id(*parts):
    return quoted(":".join(str(p) for p in parts))


def _guest_id(bridge, g):
    return _id(bridge, "guest", g.vmid, f"net{g.nic}")


# ------------------------------------------------------------------ drawing

_TYPE = {"qemu": "VM", "lxc": "CT"}


def _addresses(g):
    shown = [a for a in g.addresses if not a.lower().startswith("fe80:")]
    more = len(shown) - MAX_ADDRESSES
    text = ", ".join(shown[:MAX_ADDRESSES]) + (f" +{more}" if more > 0 else "")
    return text


def _guest_label(g, bridge_mode):
    title = f"<b>{g.vmid}</b>" + (f" {html(g.name)}" if g.name else "") + f" ({_TYPE.get(g.type, html(g.type))})"
    lines = [title, f"net{g.nic}" + (f" {html(g.mac)}" if g.mac else "")]
    if g.port_security == "off":
        lines.append(_font(WARN, "port security off"))
    else:
        if g.port_security != bridge_mode:
            lines.append(f"port security {html(g.port_security)}")
        if g.port_security == "mac+ip" and not g.closed:
            lines.append(html(_addresses(g)) if _addresses(g) else _font(WARN, "no address known: DHCP only"))
    if g.unbound:
        lines.append(_font(WARN, "<b>UNBOUND: its port sends nothing</b>"))
    if g.closed:
        lines.append(_font(WARN, "<b>closed:</b> " + html(g.closed, 2 * MAX_TEXT)))
    for p in g.problems[:MAX_PROBLEMS]:
        lines.append(_font(WARN, html(p)))
    if len(g.problems) > MAX_PROBLEMS:
        lines.append(_font(WARN, f"+{len(g.problems) - MAX_PROBLEMS} more (pve-microseg status)"))
    return _label(lines)


def _guest_fill(g, node_state):
    if node_state == NO_RULES:
        return FILL_BAD
    return FILL_WARN if (g.warning or g.problems or g.port_security == "off") else FILL_OK


_NODE_WORDS = {
    PROTECTED: ("protected: L2 rules loaded", OK),
    WAITING: ("rules loaded, bridge not up yet", OK),
    NO_RULES: ("NO L2 RULES: unprotected", BLOCKED),
    ABSENT: ("bridge not present", UNKNOWN),
    UNKNOWN_STATE: ("unknown: the node did not answer", UNKNOWN),
}


def _note(state):
    """(text, colour, edge to the uplink: (label, colour, style, arrowhead))."""
    if state in (PROTECTED, WAITING):
        return ("guest \u2194 guest: blocked (L2 rules)", OK,
                ("to other nodes: gateway MACs only", BLOCKED, "dashed", "tee"))
    if state == NO_RULES:
        return ("guest \u2194 guest: OPEN (no L2 rules here)", BLOCKED,
                ("to other nodes: OPEN", BLOCKED, "bold", "normal"))
    if state == ABSENT:
        return ("bridge not on this node", UNKNOWN, None)
    return ("guest \u2194 guest: unknown", UNKNOWN, ("unknown", UNKNOWN, "dotted", "odot"))


def _legend(p):
    lines = ["<b>blocked on every guest port where the L2 rules are loaded, and why</b>",
             "guest \u2194 guest: ARP, ND, unicast, broadcast, multicast, other ethertypes",
             "a guest sending with a gateway MAC or claiming a gateway IP",
             "rogue DHCP server, rogue IPv6 router advertisement",
             "to the uplink: anything not for a gateway MAC"]
    if p.port_security == "off":
        lines.append(_font(WARN, "port security off: a guest may send as another guest"))
    elif p.port_security == "mac":
        lines.append("port security mac: the source MAC must be the NIC's")
    else:
        lines.append("port security mac+ip: source MAC and address must be the NIC's")
    if p.routed_subnets:
        lines.append("routed hairpin to " + html(", ".join(p.routed_subnets), 2 * MAX_TEXT)
                     + " (intra-vnet-routing: drop)")
    if p.firewall is not None:
        lines.append("VNet firewall: " + html(p.firewall, 2 * MAX_TEXT))
    lines += [_font(WARN, "PROBLEM " + html(x, 2 * MAX_TEXT)) for x in p.problems]
    lines.append(f'{_font(OK, "green")}: may talk to the gateway; '
                 f'{_font(WARN, "orange")}: unbound or closed port, sends nothing')
    return _Html("<" + '<br align="left"/>'.join(lines) + '<br align="left"/>>')


def _gateway_label(p):
    title = "<b>gateway</b>" + (" (each node: anycast)" if p.node_is_gateway else "")
    lines = [title] + [html(m) for m in p.gateway_macs] + [html(ip) for ip in p.gateway_ips]
    return _label(lines)


def _bridge_title(p):
    kind = "SDN VNet" if p.vnet else "bridge"
    zone = f", zone {p.zone}" + (f" ({p.zone_type})" if p.zone_type else "") if p.zone else ""
    return f"{kind} {p.name}{zone}: {len(p.guests)} guest NIC(s) on {len(p.nodes)} node(s)"


def _bridge(p, out):
    b = p.name
    gw, uplink, legend = _id(b, "gateway"), _id(b, "uplink"), _id(b, "legend")
    out.append(f"  subgraph {_id('cluster', b)} {{")
    out.append(f"    graph{_attrs(label=_bridge_title(p), color='#9e9e9e', style='rounded')};")
    out.append(f"    {legend}{_attrs(shape='note', label=_legend(p), fillcolor='#fafafa')};")
    out.append(f"    {gw}{_attrs(shape='box', label=_gateway_label(p), fillcolor='#e8f5e9', color=OK)};")
    out.append(f"    {uplink}{_attrs(shape='cds', label='uplink (other nodes)', fillcolor='#eeeeee')};")
    edges = []
    by_node = {}
    for g in p.guests:
        by_node.setdefault(g.node, []).append(g)
    for n in p.nodes:
        mine = sorted(by_node.get(n.name, []), key=lambda g: (g.vmid, g.nic))
        if not mine and not n.stray_ports and n.state == ABSENT:
            continue
        words, colour = _NODE_WORDS.get(n.state, (n.state, UNKNOWN))
        note_text, note_colour, uplink_edge = _note(n.state)
        note = _id(b, n.name, "note")
        out.append(f"    subgraph {_id('cluster', b, n.name)} {{")
        out.append(f"      graph{_attrs(label=f'{n.name}: {words}', color=colour, fontcolor=colour, penwidth='2' if n.state == NO_RULES else '1')};")
        out.append(f"      {note}{_attrs(shape='note', label=note_text, color=note_colour, fontcolor=note_colour)};")
        for g in mine:
            out.append(f"      {_guest_id(b, g)}{_attrs(label=_guest_label(g, p.port_security), fillcolor=_guest_fill(g, n.state), color=WARN if g.warning else '#424242')};")
        for port in sorted(n.stray_ports):
            out.append(f"      {_id(b, n.name, 'port', port)}{_attrs(label=f'{port}: UNBOUND, no guest config names it', fillcolor=FILL_WARN, color=WARN, fontcolor=WARN)};")
        for i in range(COLUMN, len(mine)):
            out.append(f"      {_guest_id(b, mine[i - COLUMN])} -> {_guest_id(b, mine[i])}{_attrs(style='invis')};")
        out.append("    }")
        for g in mine:
            if n.state in (ABSENT, UNKNOWN_STATE):
                edges.append(f"    {_guest_id(b, g)} -> {gw}{_attrs(color=UNKNOWN, style='dotted')};")
            elif g.warning:
                edges.append(f"    {_guest_id(b, g)} -> {gw}{_attrs(color=WARN, style='dashed', arrowhead='tee')};")
            else:
                edges.append(f"    {_guest_id(b, g)} -> {gw}{_attrs(color=OK)};")
        if uplink_edge:
            label, ecolour, style, head = uplink_edge
            edges.append(f"    {note} -> {uplink}{_attrs(label=label, color=ecolour, fontcolor=ecolour, style=style, arrowhead=head)};")
    edges.append(f"    {uplink} -> {gw}{_attrs(dir='both', color='#9e9e9e', label='gateway MACs only')};")
    out += edges
    out.append("  }")


def dot(pictures, title="pve-microseg: who can reach whom"):
    """DOT text (a digraph) of the bridges, sorted by name."""
    out = ["// generated by pve-microseg graph", f"digraph {quoted('pve-microseg')} {{",
           f"  graph{_attrs(label=title, labelloc='t', rankdir='LR', fontname='Helvetica', fontsize='12', nodesep='0.15', ranksep='1.0', newrank='true')};",
           f"  node{_attrs(shape='box', style='rounded,filled', fontname='Helvetica', fontsize='10', fillcolor=FILL_OK)};",
           f"  edge{_attrs(fontname='Helvetica', fontsize='9')};"]
    for p in sorted(pictures, key=lambda p: p.name):
        _bridge(p, out)
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ from status's findings

def firewall_words(fw):
    """status's VNet firewall row -> words (None for a plain bridge)."""
    if fw is None:
        return None
    return (f"{'on' if fw['enable'] else 'OFF'}, policy_forward {fw['policy_forward']}, "
            f"{len(fw['our-rules'])} pve-microseg rule(s)")


def picture(bridge, row, guests, unbound):
    """A BridgePicture from status's findings.

    bridge: the ManagedBridge; row: its status bridge_row; guests: its
    GuestNic list (unbound not yet set); unbound: {node: [{port, bridge}]}
    as the nodes reported (only this bridge's and its VLAN bridges' count)."""
    from . import bindings
    mine = {(g.node, g.vmid, g.nic) for g in guests}
    flagged, stray = set(), {}
    for node_name, ports in unbound.items():
        for u in ports:
            tail = u["bridge"][len(bridge.name):]
            if u["bridge"] != bridge.name and not (tail.startswith("v") and tail[1:].isdigit()):
                continue
            owner = bindings.port_owner(u["port"])
            if owner is not None and (node_name, owner[0], owner[1]) in mine:
                flagged.add((node_name, owner[0], owner[1]))
            else:
                stray.setdefault(node_name, []).append(u["port"])
    drawn = tuple(sorted((replace(g, unbound=(g.node, g.vmid, g.nic) in flagged) for g in guests),
                         key=lambda g: (g.node, g.vmid, g.nic)))
    # a guest's node that status did not ask (not in .members): its state is unknown
    states = {**{g.node: UNKNOWN_STATE for g in drawn}, **row["nodes"]}
    nodes = tuple(NodeView(n, state, tuple(sorted(set(stray.get(n, ())))))
                  for n, state in sorted(states.items()))
    return BridgePicture(
        name=bridge.name, vnet=bridge.vnet, zone=bridge.zone, zone_type=bridge.zone_type,
        node_is_gateway=bridge.node_is_gateway, gateway_macs=tuple(bridge.gateway.macs),
        gateway_ips=tuple(str(a) for a in bridge.gateway.ips), port_security=bridge.port_security,
        routed_subnets=tuple(str(s) for s in bridge.routed_subnets),
        firewall=firewall_words(row.get("firewall")), nodes=nodes, guests=drawn,
        problems=tuple(row.get("problems", ())))
