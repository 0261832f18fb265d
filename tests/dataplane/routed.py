"""The third topology: a zone where the node itself is the gateway (an EVPN
VNet, `evnet`, on both nodes; see topology.py).  Runs in both modes.

Guests g501 (VM) and g502 (CT) on node1, g601 (VM) on node2.  Every guest
must reach its gateway (the node it runs on) and a host behind it
(192.168.0.1, routed by the node out of vmbr0).  The attacker g501 routes a
datagram for another guest of the VNet through the gateway (a host route via
the gateway address): the node would route it back into the VNet, to g502 on
the same node, or over VXLAN to g601 on the other node.  Judged at the
victim's sniffer.  Without rules every one gets through (mode none proves the
check can fail); with pve-microseg none does.
"""

import socket
from dataclasses import dataclass

from . import netns
from .probes import pings, received, sniffer, udp_send
from .topology import (BEHIND_GATEWAY, GATEWAY_NS, NODES, ROUTED_GW4, ROUTED_GW6, ROUTED_VNET, Guest, guest_nic,
                       node_ip)


@dataclass(frozen=True)
class RoutedGuest(Guest):
    """A guest NIC (net0) on the routed VNet."""

    @property
    def ip4(self):
        return f"10.200.0.{self.vmid // 100 * 10 + self.vmid % 100}"

    @property
    def ip6(self):
        return f"2001:db8:200::{self.vmid // 100 * 10 + self.vmid % 100}"

    bridge = ROUTED_VNET
    gateway4 = ROUTED_GW4


ROUTED_GUESTS = (RoutedGuest(501, "node1", "tap"), RoutedGuest(502, "node1", "veth"),
                 RoutedGuest(601, "node2", "tap"))
ATTACKER = ROUTED_GUESTS[0]
VICTIMS = {"same-node": ROUTED_GUESTS[1], "cross-node": ROUTED_GUESTS[2]}

GATEWAY_PROPS = {
    "ping4-to-gateway": "ping guest -> its gateway (the node, IPv4)",
    "ping6-to-gateway": "ping guest -> its gateway (the node, IPv6)",
    "host-behind-gateway": f"ping guest -> {BEHIND_GATEWAY}, a host the node routes to",
}
ATTACK_PROPS = {
    "intra-vnet-routed4": ("UDP to <victim IPv4> through the gateway (host route via the gateway address)",
                           "reach another guest of its VNet through the node's routing, around the L2 isolation"),
    "intra-vnet-routed6": ("UDP to <victim IPv6> through the gateway (host route via the gateway address)",
                           "reach another guest of its VNet through the node's routing, over IPv6"),
}


def matrix_rows():
    """(name, kind, prop, description, impact) of every routed check."""
    rows = [(f"routed/{p}/{g.ns}", "gateway", p, f"{d} [{g.label}, evnet]", "")
            for p, d in GATEWAY_PROPS.items() for g in ROUTED_GUESTS]
    rows += [(f"routed/{p}/{where}", "attack", p, f"{what} from {ATTACKER.label} to {v.label}", impact)
             for p, (what, impact) in ATTACK_PROPS.items() for where, v in VICTIMS.items()]
    return rows


# ---- building (inside the QEMU guest) ---------------------------------------------

def build():
    """Guests, their ports on evnet, forwarding on the nodes, what FRR would
    install for remote guests, the host behind the gateway."""
    netns.ip_batch(None, [f"netns add {g.ns}" for g in ROUTED_GUESTS])
    for n in NODES:
        netns.sysctl(n, {"ipv4/ip_forward": 1, "ipv6/conf/all/forwarding": 1})
    for g in ROUTED_GUESTS:
        netns.sysctl(g.ns, {"ipv6/conf/all/accept_dad": 0, "ipv6/conf/default/accept_dad": 0,
                            "ipv4/conf/all/accept_redirects": 0, "ipv4/conf/default/accept_redirects": 0,
                            "ipv6/conf/all/accept_redirects": 0, "ipv6/conf/default/accept_redirects": 0})
        guest_nic(g, ROUTED_GW4, ROUTED_GW6)
    plug()
    netns.ip_batch(GATEWAY_NS, [f"addr add {BEHIND_GATEWAY}/24 dev gw0",
                                f"route add 10.200.0.0/24 via {node_ip(NODES[0])}"])


def plug():
    """tap_plug for the routed guests (again after an ifreload), and the
    neighbour entries EVPN's control plane gives each node for the guests of
    the other node."""
    for node in NODES:
        mine = [g for g in ROUTED_GUESTS if g.node == node]
        remote = [g for g in ROUTED_GUESTS if g.node != node]
        netns.ip_batch(node, [f"link set {g.port} master {ROUTED_VNET} up" for g in mine]
                       + [f"link set {g.nic} up" for g in mine]
                       + [f"neigh replace {ip} lladdr {g.mac} dev {ROUTED_VNET} nud permanent"
                          for g in remote for ip in (g.ip4, g.ip6)])


# ---- running ------------------------------------------------------------------------

def _attacks():
    a, out = ATTACKER, {}
    socks = {}
    try:
        for where, v in VICTIMS.items():
            for fam, dst, gw, prop in ((4, v.ip4, ROUTED_GW4, "intra-vnet-routed4"),
                                       (6, v.ip6, ROUTED_GW6, "intra-vnet-routed6")):
                netns.run(["ip", "-n", a.ns, f"-{fam}", "route", "replace", dst, "via", gw, "dev", "eth0"])
                nonce = f"routed-{prop}-{where}".encode()
                socks[v] = sock = sniffer(v.ns)
                # the node resolves the victim first (its ARP/NS goes out of its own stack)
                for _ in range(3):
                    udp_send(a.ns, socket.AF_INET if fam == 4 else socket.AF_INET6, dst, nonce)
                    got = received(sock, nonce, 0.7)
                    if got:
                        break
                out[f"routed/{prop}/{where}"] = ("delivered" if got else "blocked",
                                                 f"{a.ns} -> {dst} via {gw}: "
                                                 f"{'sniffed' if got else 'not sniffed'} on {v.ns} eth0")
                netns.run(["ip", "-n", a.ns, f"-{fam}", "route", "del", dst, "via", gw], check=False)
                sock.close()
    finally:
        for s in socks.values():
            s.close()
    return out


def run():
    """{check name: (observed, detail)} for the routed VNet."""
    jobs = {}
    for g in ROUTED_GUESTS:
        jobs[f"routed/ping4-to-gateway/{g.ns}"] = (g.ns, ROUTED_GW4)
        jobs[f"routed/ping6-to-gateway/{g.ns}"] = (g.ns, ROUTED_GW6)
        jobs[f"routed/host-behind-gateway/{g.ns}"] = (g.ns, BEHIND_GATEWAY)
    out = {k: ("delivered" if ok else "blocked", line) for k, (ok, line) in pings(jobs).items()}
    out.update(_attacks())
    return out
