"""NICs with a VLAN tag on a plain bridge that is not VLAN-aware.  Runs in both modes.

vmbr0 (each node's plain uplink bridge) is managed in microseg.yaml, with the
router of VLAN 100 as its gateway.  VM 105 and CT 106 on node1 have
`bridge=vmbr0,tag=100`: Proxmox plugs their ports into `vmbr0v100` (here the
bridge SDN's VLAN zone already made: eth0.100 and vnet1's pr_vnet1), which
no ifupdown2 hook ever sees by that name.  With pve-microseg it carries
vmbr0's rules: the guests reach the gateway, not each other, and cannot send
as each other.  Judged at the receiver's sniffer.
"""

import socket

from . import frames as F, netns
from .probes import pings, received, set_neighbours, sniffer, udp_send
from .topology import (GATEWAY_IF, GATEWAY_IP4, GATEWAY_IP6, GATEWAY_MAC, GATEWAY_NS, UPLINK_BRIDGE, Guest,
                       guest_nic)

TAG = 100
VLAN_BRIDGE = f"{UPLINK_BRIDGE}v{TAG}"


class TaggedGuest(Guest):
    """A guest NIC (net0) with tag=100 on vmbr0."""

    bridge = UPLINK_BRIDGE
    tag = TAG


TAGGED_GUESTS = (TaggedGuest(105, "node1", "tap"), TaggedGuest(106, "node1", "veth"))
A, B = TAGGED_GUESTS

GATEWAY_PROPS = {
    "ping4-to-gateway": f"ping guest -> gateway (IPv4) from {VLAN_BRIDGE}",
    "ping6-to-gateway": f"ping guest -> gateway (IPv6) from {VLAN_BRIDGE}",
}
ATTACK_PROPS = {
    "ipv4-unicast": ("UDP to <victim IPv4> with a static neighbour entry, both on vmbr0v100",
                     "talk to another tagged guest directly, bypassing the gateway"),
    "ipv4-source-spoof": ("UDP to the gateway from <victim IPv4>",
                          "send as another tagged guest"),
}


def matrix_rows():
    rows = [(f"vlantag/{p}/{g.ns}", "gateway", p, f"{d} [{g.label}, tag {TAG} on {UPLINK_BRIDGE}]", "")
            for p, d in GATEWAY_PROPS.items() for g in TAGGED_GUESTS]
    rows += [(f"vlantag/{p}/{A.ns}->{B.ns}", "attack", p, f"{what} from {A.label} to {B.label}", impact)
             for p, (what, impact) in ATTACK_PROPS.items()]
    return rows


def microseg_yaml():
    return (f"  {UPLINK_BRIDGE}:\n"
            f"    gateway-mac: {GATEWAY_MAC}\n"
            f"    gateway-ip: [{GATEWAY_IP4}, {GATEWAY_IP6}]\n")


def build():
    netns.ip_batch(None, [f"netns add {g.ns}" for g in TAGGED_GUESTS])
    for g in TAGGED_GUESTS:
        netns.sysctl(g.ns, {"ipv6/conf/all/accept_dad": 0, "ipv6/conf/default/accept_dad": 0})
        guest_nic(g)
    plug()


def plug():
    """tap_plug of a tagged NIC on a bridge that is not VLAN-aware: into <bridge>v<tag>."""
    for node in {g.node for g in TAGGED_GUESTS}:
        mine = [g for g in TAGGED_GUESTS if g.node == node]
        netns.ip_batch(node, [f"link set {g.port} master {VLAN_BRIDGE} up" for g in mine])


def _unicast():
    set_neighbours(A.ns, [(B.ip4, B.mac)])
    sock = sniffer(B.ns)
    try:
        nonce = b"vlantag-unicast"
        udp_send(A.ns, socket.AF_INET, B.ip4, nonce)
        got = received(sock, nonce, 0.7)
    finally:
        sock.close()
    return ("delivered" if got else "blocked", f"sniffed on {B.ns} eth0: {got}")


def _source_spoof():
    sock, sender = sniffer(GATEWAY_NS, GATEWAY_IF), netns.packet_socket(A.ns, "eth0")
    try:
        nonce = F.new_nonce()
        sender.send(F.udp4_frame(GATEWAY_MAC, A.mac, B.ip4, GATEWAY_IP4, 9999, 9999, nonce))
        got = received(sock, nonce, 0.7)
    finally:
        sock.close()
        sender.close()
    return ("delivered" if got else "blocked", f"sniffed on the gateway's {GATEWAY_IF}: {got}")


def run():
    jobs = {}
    for g in TAGGED_GUESTS:
        jobs[f"vlantag/ping4-to-gateway/{g.ns}"] = (g.ns, GATEWAY_IP4)
        jobs[f"vlantag/ping6-to-gateway/{g.ns}"] = (g.ns, GATEWAY_IP6)
    out = {k: ("delivered" if ok else "blocked", line) for k, (ok, line) in pings(jobs).items()}
    out[f"vlantag/ipv4-unicast/{A.ns}->{B.ns}"] = _unicast()
    out[f"vlantag/ipv4-source-spoof/{A.ns}->{B.ns}"] = _source_spoof()
    return out
