"""`pve-microseg explain`: from two endpoints to a frame and the bridges it
crosses (pure).  policy/explain.py then evaluates it.

Endpoints: `vm:<vmid>[/net<n>]`, `ct:<vmid>[/net<n>]` (net0 by default),
`gateway` (of the other endpoint's bridge), or an address: a guest's or a
gateway's, else a host beyond the gateway.

The path, on one managed bridge (`<bridge>v<tag>` for a tagged NIC of a
plain bridge), with the uplink as the port towards the gateway and other
nodes:
  guest -> guest, same node     in at the sender's port, out at the receiver's
  guest -> guest, other nodes   sender's node: out at the uplink; receiver's
                                node: in at the uplink, out at its port
  guest -> gateway              out at the uplink; when the node is the
                                gateway (Simple/EVPN zones): for the host
                                itself (prerouting only)
  gateway -> guest              in at the uplink; the node as gateway sends
                                through the bridge's output path, which no
                                rule of ours sees
"""

import ipaddress
import re
from dataclasses import dataclass, field

from ..model.errors import EndpointError
from . import explain as X, frame as F

UPLINK = "uplink"           # the bridge's port towards the gateway and the other nodes (any non-guest port)
PROTOS = ("icmp", "tcp", "udp", "arp", "nd", "dhcp", "ra")
DEFAULT_PORTS = {"tcp": 443, "udp": 53}
_GUEST = re.compile(r"^(vm|ct):(\d+)(?:/net(\d+))?$")


@dataclass(frozen=True)
class Endpoint:
    kind: str                   # guest, gateway, address
    label: str
    bridge: object = None       # ManagedBridge
    node: str = None            # guest: the node it runs on
    port: str = None            # guest: its port on the bridge
    hop_bridge: str = None      # guest: the bridge its port is in (<bridge>v<tag> for a tagged NIC)
    mac: str = None
    ipv4: tuple = ()
    ipv6: tuple = ()
    vmid: int = None
    nic: object = None          # model.guest.Nic
    firewall: bool = False
    guest_type: str = None

    def to_json(self):
        out = {"kind": self.kind, "label": self.label, "bridge": self.bridge.name if self.bridge else None,
               "mac": self.mac, "ipv4": list(self.ipv4), "ipv6": list(self.ipv6)}
        if self.kind == "guest":
            out.update(node=self.node, port=self.port, vmid=self.vmid, nic=self.nic.key,
                       **{"bridge-of-port": self.hop_bridge, "firewall": self.firewall})
        return out


@dataclass
class Plan:
    frame: F.Frame
    hops: list
    notes: list = field(default_factory=list)       # Proxmox features in the path, not evaluated
    unseen: list = field(default_factory=list)      # what explain cannot see
    source: Endpoint = None                         # the endpoints, completed (a gateway's MAC...)
    target: Endpoint = None


def _guest(text, m, cfg, configs, bindings_of):
    kind, vmid, index = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    want = "qemu" if kind == "vm" else "lxc"
    found = [(g, gc) for g, gc in configs if g.vmid == vmid]
    if not found:
        raise EndpointError(f"{text}: no guest {vmid} in /etc/pve/.vmlist (or its config cannot be read)")
    guest, gc = found[0]
    if gc.type != want:
        raise EndpointError(f"{text}: guest {vmid} is a {'VM' if gc.type == 'qemu' else 'container'}: "
                            f"write {'vm' if gc.type == 'qemu' else 'ct'}:{vmid}")
    nic = next((n for n in gc.nics if n.index == index), None)
    if nic is None:
        raise EndpointError(f"{text}: guest {vmid} has no net{index}")
    bridge = cfg.bridge_map.get(nic.bridge)
    if bridge is None:
        raise EndpointError(f"{text}: net{index} of guest {vmid} is on {nic.bridge or 'no bridge'}, "
                            "which pve-microseg does not manage: no rule of ours is in its path")
    port = gc.port(nic, fwbr=nic.firewall)
    binding = bindings_of(guest.node, port)
    ipv4 = tuple(binding.ipv4 or ()) if binding else tuple(a for a in nic.static if ":" not in a)
    ipv6 = tuple(binding.ipv6 or ()) if binding else tuple(a for a in nic.static if ":" in a)
    hop_bridge = f"{bridge.name}v{nic.tag}" if nic.tag and not bridge.vnet else bridge.name
    return Endpoint("guest", f"{'VM' if gc.type == 'qemu' else 'CT'} {vmid} net{index} ({port} on {guest.node})",
                    bridge=bridge, node=guest.node, port=port, hop_bridge=hop_bridge, mac=nic.mac,
                    ipv4=ipv4, ipv6=ipv6, vmid=vmid, nic=nic, firewall=nic.firewall, guest_type=gc.type)


def endpoint(text, cfg, configs, bindings_of):
    """An Endpoint from the command line.  `configs`: (Guest, GuestConfig) of
    the cluster; `bindings_of(node, port)`: that port's PortBinding or None."""
    m = _GUEST.match(text)
    if m:
        return _guest(text, m, cfg, configs, bindings_of)
    if text == "gateway":
        return Endpoint("gateway", "gateway")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise EndpointError(f"{text}: expected vm:<vmid>[/net<n>], ct:<vmid>[/net<n>], gateway or an "
                            "IPv4/IPv6 address") from None
    for b in cfg.bridges:
        if ip in b.gateway.ips:
            return Endpoint("gateway", f"gateway {ip} of {b.name}", bridge=b, **_ips(ip))
    for g, gc in configs:
        for nic in gc.nics:
            bridge = cfg.bridge_map.get(nic.bridge)
            if bridge is None:
                continue
            port = gc.port(nic, fwbr=nic.firewall)
            binding = bindings_of(g.node, port)
            known = set((binding.ipv4 or ()) + (binding.ipv6 or ())) if binding else set(nic.static)
            if str(ip) in known:
                kind = "vm" if gc.type == "qemu" else "ct"
                return _guest(text, _GUEST.match(f"{kind}:{g.vmid}/net{nic.index}"), cfg, configs, bindings_of)
    return Endpoint("address", f"{ip} (beyond the gateway)", **_ips(ip))


def _ips(ip):
    return {"ipv4": (str(ip),)} if ip.version == 4 else {"ipv6": (str(ip),)}


def _for_bridge(ep, bridge):
    """An address named as some bridge's gateway, seen from `bridge`: its
    gateway too, or a host beyond it."""
    if ep.kind != "gateway" or ep.bridge is None or ep.bridge.name == bridge.name:
        return ep
    ip = ipaddress.ip_address((ep.ipv4 + ep.ipv6)[0])
    if ip in bridge.gateway.ips:
        return Endpoint("gateway", f"gateway {ip} of {bridge.name}", bridge=bridge, **_ips(ip))
    return Endpoint("address", f"{ip} (beyond the gateway of {bridge.name})", **_ips(ip))


def _gateway_of(ep, bridge):
    """A gateway endpoint completed with its bridge's MAC and addresses."""
    gw = bridge.gateway
    ipv4 = ep.ipv4 or tuple(str(i) for i in gw.ipv4)
    ipv6 = ep.ipv6 or tuple(str(i) for i in gw.ipv6)
    return Endpoint("gateway", ep.label if ep.bridge else f"gateway of {bridge.name}", bridge=bridge,
                    mac=gw.macs[0] if gw.macs else None, ipv4=ipv4, ipv6=ipv6)


def _pick(addrs, family, who):
    for a in addrs:
        if family is None or (":" in a) == (family == 6):
            return a
    raise EndpointError(f"{who} has no known IPv{family or ''} address"
                        + (" (try the other family: -4/-6)" if family else ""))


def _family(a, b, proto, family):
    if proto in ("nd", "ra"):
        return 6
    if proto in ("arp", "dhcp"):
        return 4
    if family:
        return family
    return 4 if a.ipv4 and b.ipv4 else 6


def plan(a, b, proto="icmp", family=None, port=None):
    """The frame `a` sends to `b` for `proto`, and its hops; EndpointError
    when the two cannot meet on a managed bridge."""
    if proto not in PROTOS:
        raise EndpointError(f"--proto {proto}: expected one of {', '.join(PROTOS)}")
    if a.kind != "guest" and b.kind != "guest":
        raise EndpointError("one endpoint must be a guest (vm:<vmid>, ct:<vmid> or its address): "
                            "pve-microseg's rules are at guest ports")
    bridge = (a if a.kind == "guest" else b).bridge
    if a.kind == b.kind == "guest" and a.bridge.name != b.bridge.name:
        raise EndpointError(f"{a.label} is on {a.bridge.name}, {b.label} on {b.bridge.name}: they meet only "
                            "through a router, whose policy pve-microseg does not see; explain each to 'gateway'")
    a, b = (_for_bridge(e, bridge) for e in (a, b))
    a = _gateway_of(a, bridge) if a.kind == "gateway" else a
    b = _gateway_of(b, bridge) if b.kind == "gateway" else b
    routed = bridge.gateway.macs == () or bridge.node_is_gateway
    fam = _family(a, b, proto, family)
    frame = _frame(a, b, proto, fam, port, bridge)
    return Plan(frame, _hops(a, b, bridge), _notes(a, b, bridge), _unseen(a, b, routed), a, b)


def _mac_towards(ep, other, bridge):
    """The destination MAC of a frame to `ep`: a guest's own; anything beyond
    a guest's bridge through the gateway's MAC."""
    if ep.kind == "guest":
        return ep.mac
    gw = bridge.gateway.macs
    return gw[0] if gw else "00:00:00:00:00:00"


def _src_mac(ep, bridge):
    return ep.mac if ep.kind == "guest" else (bridge.gateway.macs[0] if bridge.gateway.macs else None)


def _frame(a, b, proto, fam, port, bridge):
    smac, dmac = _src_mac(a, bridge), _mac_towards(b, a, bridge)
    v4 = fam == 4
    if proto == "arp":
        return F.Frame(smac, F.BROADCAST, F.ETH_ARP, arp_op=1, arp_sha=smac,
                       arp_spa=_pick(a.ipv4, 4, a.label), arp_tha="00:00:00:00:00:00",
                       arp_tpa=_pick(b.ipv4, 4, b.label))
    if proto == "dhcp":
        if a.kind == "guest":       # a client's DISCOVER
            return F.Frame(smac, F.BROADCAST, F.ETH_IP, src_ip="0.0.0.0", dst_ip="255.255.255.255",
                           proto=F.IPPROTO["udp"], sport=68, dport=67)
        return F.Frame(smac, dmac, F.ETH_IP, src_ip=_pick(a.ipv4, 4, a.label), dst_ip=_pick(b.ipv4, 4, b.label),
                       proto=F.IPPROTO["udp"], sport=67, dport=68)
    if proto == "ra":
        src = next((x for x in a.ipv6 if x.startswith("fe80:")), _pick(a.ipv6, 6, a.label))
        return F.Frame(smac, "33:33:00:00:00:01", F.ETH_IP6, src_ip=src, dst_ip="ff02::1",
                       proto=F.IPPROTO["icmpv6"], icmp_type=F.ICMP6["nd-router-advert"])
    if proto == "nd":
        target = ipaddress.IPv6Address(_pick(b.ipv6, 6, b.label))
        group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | (int(target) & 0xFFFFFF))
        mac = "33:33:" + ":".join(f"{x:02x}" for x in group.packed[-4:])
        return F.Frame(smac, mac, F.ETH_IP6, src_ip=_pick(a.ipv6, 6, a.label), dst_ip=group,
                       proto=F.IPPROTO["icmpv6"], icmp_type=F.ICMP6["nd-neighbor-solicit"], nd_target=target)
    src, dst = _pick(a.ipv4 if v4 else a.ipv6, fam, a.label), _pick(b.ipv4 if v4 else b.ipv6, fam, b.label)
    common = dict(src_mac=smac, dst_mac=dmac, ethertype=F.ETH_IP if v4 else F.ETH_IP6, src_ip=src, dst_ip=dst)
    if proto == "icmp":
        return F.Frame(**common, proto=F.IPPROTO["icmp" if v4 else "icmpv6"],
                       icmp_type=(F.ICMP4 if v4 else F.ICMP6)["echo-request"])
    return F.Frame(**common, proto=F.IPPROTO[proto], sport=40000, dport=port or DEFAULT_PORTS[proto])


def _hops(a, b, bridge):
    routed = bridge.node_is_gateway
    if a.kind == "guest" and b.kind == "guest":
        if a.node == b.node:
            return [X.Hop(a.node, a.hop_bridge, a.port, b.port)]
        return [X.Hop(a.node, a.hop_bridge, a.port, UPLINK), X.Hop(b.node, b.hop_bridge, UPLINK, b.port)]
    if a.kind == "guest":
        return [X.Hop(a.node, a.hop_bridge, a.port, None if routed else UPLINK)]
    if routed:
        return []                   # the node sends it: the bridge's output path
    return [X.Hop(b.node, b.hop_bridge, UPLINK, b.port)]


def _notes(a, b, bridge):
    notes = []
    for ep, side in ((a, "sender"), (b, "receiver")):
        if ep.kind == "guest" and ep.firewall:
            where = f"fwbr{ep.vmid}i{ep.nic.index}"
            notes.append(f"Proxmox guest firewall of {ep.label} ({side}, {ep.nic.key} firewall=1, on {where}): "
                         f"its rules{' and ipfilter' if side == 'sender' else ''} ({ep.vmid}.fw) apply too; "
                         "not evaluated")
        elif ep.kind == "guest":
            notes.append(f"{ep.label} ({side}): {ep.nic.key} firewall=0, no Proxmox guest firewall on this NIC")
    if bridge.vnet:
        notes.append(f"Proxmox VNet firewall of {bridge.name} (sdn/firewall/{bridge.name}.fw, nftables backend, "
                     "forwarded IP traffic only): not evaluated")
    return notes


def _unseen(a, b, routed):
    out = ["the network beyond this bridge: the uplink, the physical switch, other nodes' bridges "
           "outside the hops listed"]
    if a.kind != "guest" or b.kind != "guest":
        out.append("the gateway's own policy (its firewall, routes, whether it answers)"
                   if not routed else "the node's own routing and firewall (it is the gateway)")
    out.append("the receiver's own firewall and whether anything listens")
    out.append("the bridge's FDB and neighbour caches (which port a unicast MAC is forwarded to is assumed)")
    return out
