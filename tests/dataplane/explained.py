"""`pve-microseg explain` must agree with the kernel.

For every check of the dataplane matrix that is the fate of frames (same
node, cross node, routed VNet, tagged NICs), the same frames are built here
-- from the very bytes checks.py sends where it sends raw frames -- with the
bridges and ports each crosses on its way, and evaluated by the library's
evaluator (pve_microseg.policy.explain) on the ruleset of the node each
bridge is on.  "delivered" when every frame passes every hop, else
"blocked"; it must equal what the real packets showed.

Inside the QEMU guest (scenario.py) the rulesets are the kernel's own JSON
listings, taken right after the traffic checks, in both modes (mode none:
no table, everything passes).  On the host (tests/test_explain.py) they are
the desired rulesets of node1 and node2, generated from the simulated
cluster's /etc/pve (cluster.py), and the verdicts must equal what the
matrix expects.

How a check is judged where the path is not one frame to its receiver:
  gateway-mac-source, mac-steal   where the bridge learns the source: the
                                  attacker's port, prerouting (accepted there,
                                  the FDB is poisoned whatever follows)
  arp-/nd-gateway, pings          the request and the answer
  routed (the node is the gateway) the frame into the node (prerouting only);
                                  the node's own frames take the bridge's
                                  output path, which no rule of ours sees;
                                  cross node, also the routed frame from the
                                  anycast MAC into the victim's port
Not evaluated (not the fate of frames): dad (address state after duplicate
address detection), and every portsec, lifecycle, hookscript, golden,
hostile and package check.
"""

import struct

from . import frames as F
from .routed import ATTACKER as R_ATTACKER, ROUTED_GUESTS, VICTIMS as R_VICTIMS
from .topology import (ANYCAST_MAC, BEHIND_GATEWAY, GATEWAY_IP4, GATEWAY_IP6, GATEWAY_MAC, GUEST, GUESTS,
                       ROUTED_GW4, ROUTED_GW6, ROUTED_VNET, UPLINK_BRIDGE, VNET1)
from .vlantag import A as T_A, B as T_B, TAGGED_GUESTS, VLAN_BRIDGE

NOT_EVALUATED = ("dad",)
ATTACKER = GUEST[101]
VICTIMS = (GUEST[102], GUEST[103], GUEST[201])
NONCE = b"explain-agree"
VLAN_UPLINK = f"eth0.{VNET1.tag}"       # vmbr0v100's port to the switch
VNET_UPLINK = f"ln_{VNET1.name}"        # vnet1's port to vmbr0v100 (its peer pr_vnet1 is on vmbr0v100)
VNET_PEER = f"pr_{VNET1.name}"
VXLAN = f"vxlan_{ROUTED_VNET}"


def _lib():
    try:
        from pve_microseg.policy import explain, frame
    except ImportError:                 # mode none in the guest: not installed, the source tree's
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))
        from pve_microseg.policy import explain, frame
    return explain, frame


# ---- frames ---------------------------------------------------------------------------

def parse(raw):
    """The Frame of raw Ethernet bytes (the subset frames.py builds)."""
    _, Fr = _lib()
    dst, src = F.mac_str(raw[0:6]), F.mac_str(raw[6:12])
    (ethertype,) = struct.unpack("!H", raw[12:14])
    body = raw[14:]
    if ethertype == F.ETH_P_ARP:
        (op,) = struct.unpack("!H", body[6:8])
        return Fr.Frame(src, dst, ethertype, arp_op=op, arp_sha=F.mac_str(body[8:14]),
                        arp_spa=_ip(body[14:18]), arp_tha=F.mac_str(body[18:24]), arp_tpa=_ip(body[24:28]))
    if ethertype == F.ETH_P_IP:
        ihl, proto = (body[0] & 0x0F) * 4, body[9]
        return _l4(Fr, src, dst, ethertype, _ip(body[12:16]), _ip(body[16:20]), proto, body[ihl:])
    if ethertype == F.ETH_P_IPV6:
        return _l4(Fr, src, dst, ethertype, _ip(body[8:24]), _ip(body[24:40]), body[6], body[40:])
    return Fr.Frame(src, dst, ethertype)


def _ip(b):
    import ipaddress
    return ipaddress.ip_address(bytes(b))


def _l4(Fr, src, dst, ethertype, sip, dip, proto, l4):
    kw = {}
    if proto == F.IPPROTO_UDP:
        kw["sport"], kw["dport"] = struct.unpack("!HH", l4[:4])
    elif proto in (F.IPPROTO_ICMP, F.IPPROTO_ICMPV6):
        kw["icmp_type"] = l4[0]
        if proto == F.IPPROTO_ICMPV6 and l4[0] in (F.ICMP6_NS, F.ICMP6_NA):
            kw["nd_target"] = _ip(l4[8:24])
    return Fr.Frame(src, dst, ethertype, src_ip=sip, dst_ip=dip, proto=proto, **kw)


def udp(dst_mac, src_mac, src, dst, sport=9999, dport=9999):
    if ":" in src:
        return parse(F.ethernet(dst_mac, src_mac, F.ETH_P_IPV6,
                                F.ipv6(src, dst, F.IPPROTO_UDP, F.udp(src, dst, sport, dport, NONCE))))
    return parse(F.udp4_frame(dst_mac, src_mac, src, dst, sport, dport, NONCE))


def echo(src_mac, dst_mac, src, dst, reply=False):
    """An ICMP/ICMPv6 echo request (or reply), as ping sends it."""
    _, Fr = _lib()
    six = ":" in src
    kind = ("echo-reply" if reply else "echo-request")
    return Fr.Frame(src_mac, dst_mac, F.ETH_P_IPV6 if six else F.ETH_P_IP, src_ip=src, dst_ip=dst,
                    proto=F.IPPROTO_ICMPV6 if six else F.IPPROTO_ICMP,
                    icmp_type=(Fr.ICMP6 if six else Fr.ICMP4)[kind])


# ---- paths ----------------------------------------------------------------------------

def _hop(*args):
    X, _ = _lib()
    return X.Hop(*args)


def _fwbr_out(g):
    """A VM with firewall=1: from its tap through fwbr<vmid>i0 to the fwpr port."""
    return [_hop(g.node, f"fwbr{g.vmid}i0", g.nic, f"fwln{g.vmid}i0")] if g.kind == "fwpr" else []


def _fwbr_in(g):
    return [_hop(g.node, f"fwbr{g.vmid}i0", f"fwln{g.vmid}i0", g.nic)] if g.kind == "fwpr" else []


def to_gateway(g):
    return _fwbr_out(g) + [_hop(g.node, VNET1.name, g.port, VNET_UPLINK),
                           _hop(g.node, VLAN_BRIDGE, VNET_PEER, VLAN_UPLINK)]


def from_gateway(g):
    return [_hop(g.node, VLAN_BRIDGE, VLAN_UPLINK, VNET_PEER),
            _hop(g.node, VNET1.name, VNET_UPLINK, g.port)] + _fwbr_in(g)


def between(a, v):
    if a.node == v.node:
        return _fwbr_out(a) + [_hop(a.node, VNET1.name, a.port, v.port)] + _fwbr_in(v)
    return to_gateway(a) + from_gateway(v)


def learned(a):
    """Where the bridge learns the attacker's source: its port, prerouting."""
    return _fwbr_out(a) + [_hop(a.node, VNET1.name, a.port, None)]


# ---- the checks -------------------------------------------------------------------------

def cases():
    """{check name: [(frame, [Hop])]}: every check evaluated."""
    out, gw = {}, GATEWAY_MAC
    for g in GUESTS:
        out[f"arp-gateway/{g.ns}"] = [
            (parse(F.arp_request(g.mac, g.ip4, GATEWAY_IP4, NONCE)), to_gateway(g)),
            (parse(F.arp(F.ARP_REPLY, gw, gw, GATEWAY_IP4, g.mac, g.ip4, NONCE, dst=g.mac)), from_gateway(g))]
        out[f"nd-gateway/{g.ns}"] = [
            (parse(F.neighbor_solicitation(g.mac, g.ip6, GATEWAY_IP6, NONCE)), to_gateway(g)),
            (parse(F.neighbor_advertisement(gw, GATEWAY_IP6, NONCE, dst=g.ip6, dst_mac=g.mac)), from_gateway(g))]
        for fam, mine, theirs in ((4, g.ip4, GATEWAY_IP4), (6, g.ip6, GATEWAY_IP6)):
            out[f"ping{fam}-to-gateway/{g.ns}"] = [(echo(g.mac, gw, mine, theirs), to_gateway(g)),
                                                  (echo(gw, g.mac, theirs, mine, True), from_gateway(g))]
            out[f"ping{fam}-from-gateway/{g.ns}"] = [(echo(gw, g.mac, theirs, mine), from_gateway(g)),
                                                    (echo(g.mac, gw, mine, theirs, True), to_gateway(g))]
        out[f"dhcp-discover/{g.ns}"] = [(parse(F.dhcp_discover(g.mac, NONCE)), to_gateway(g))]
        out[f"dhcp-offer-from-gateway/{g.ns}"] = [(parse(F.dhcp_offer(gw, GATEWAY_IP4, g.mac, g.ip4, NONCE)),
                                                   from_gateway(g))]
    a = ATTACKER
    for v in VICTIMS:
        pair = f"{a.ns}->{v.ns}"
        to_v = between(a, v)
        sends = {
            "arp-request": (F.arp_request(a.mac, a.ip4, v.ip4, NONCE), to_v),
            "nd-solicit": (F.neighbor_solicitation(a.mac, a.ip6, v.ip6, NONCE), to_v),
            "ipv4-broadcast": (F.udp4_frame(F.BROADCAST, a.mac, a.ip4, f"{VNET1.subnet4}.255", 9999, 9999, NONCE),
                               to_v),
            "ipv6-multicast": (F.ethernet(F.multicast_mac6("ff02::1"), a.mac, F.ETH_P_IPV6,
                                          F.ipv6(a.ip6, "ff02::1", F.IPPROTO_UDP,
                                                 F.udp(a.ip6, "ff02::1", 9999, 9999, NONCE), 1)), to_v),
            "ethertype-broadcast": (F.raw_ethertype(F.BROADCAST, a.mac, NONCE), to_v),
            "dhcp-offer": (F.dhcp_offer(a.mac, a.ip4, v.mac, v.ip4, NONCE), to_v),
            "ipv6-ra": (F.router_advertisement(a.mac, F.link_local(a.mac), NONCE), to_v),
            "gateway-ip-source": (F.udp4_frame(v.mac, a.mac, GATEWAY_IP4, v.ip4, 53, 9999, NONCE), to_v),
            "garp-gateway": (F.gratuitous_arp(a.mac, GATEWAY_IP4, NONCE), to_v),
            "arp-reply-gateway": (F.arp_reply(a.mac, GATEWAY_IP4, v.mac, v.ip4, NONCE), to_v),
            "na-gateway": (F.neighbor_advertisement(a.mac, GATEWAY_IP6, NONCE), to_v),
            "gateway-mac-source": (F.udp4_frame(F.BROADCAST, gw, GATEWAY_IP4, f"{VNET1.subnet4}.255", 67, 68,
                                                NONCE), learned(a)),
            "mac-steal": (F.udp4_frame(gw, v.mac, a.ip4, GATEWAY_IP4, 9999, 9999, NONCE), learned(a)),
            "arp-sender-spoof": (F.arp(F.ARP_REQUEST, a.mac, a.mac, v.ip4, "00:00:00:00:00:00", GATEWAY_IP4,
                                       NONCE), to_gateway(a)),
            "ipv4-source-spoof": (F.udp4_frame(gw, a.mac, v.ip4, GATEWAY_IP4, 9999, 9999, NONCE), to_gateway(a)),
            "na-claim-guest": (F.neighbor_advertisement(a.mac, v.ip6, NONCE, dst=GATEWAY_IP6, dst_mac=gw,
                                                        src=a.ip6), to_gateway(a)),
        }
        for prop, (raw, hops) in sends.items():
            out[f"{prop}/{pair}"] = [(parse(raw), hops)]
        out[f"ipv4-unicast/{pair}"] = [(udp(v.mac, a.mac, a.ip4, v.ip4), to_v)]
        out[f"ipv6-unicast/{pair}"] = [(udp(v.mac, a.mac, a.ip6, v.ip6), to_v)]
        out[f"ipv6-source-spoof/{pair}"] = [(udp(gw, a.mac, v.ip6, GATEWAY_IP6), to_gateway(a))]
    out.update(_routed())
    out.update(_vlantag())
    return out


def _routed():
    out = {}
    for g in ROUTED_GUESTS:
        into_node = [_hop(g.node, ROUTED_VNET, g.port, None)]
        out[f"routed/ping4-to-gateway/{g.ns}"] = [(echo(g.mac, ANYCAST_MAC, g.ip4, ROUTED_GW4), into_node)]
        out[f"routed/ping6-to-gateway/{g.ns}"] = [(echo(g.mac, ANYCAST_MAC, g.ip6, ROUTED_GW6), into_node)]
        out[f"routed/host-behind-gateway/{g.ns}"] = [(echo(g.mac, ANYCAST_MAC, g.ip4, BEHIND_GATEWAY), into_node)]
    a = R_ATTACKER
    for where, v in R_VICTIMS.items():
        for fam, dst in ((4, v.ip4), (6, v.ip6)):
            src = a.ip4 if fam == 4 else a.ip6
            legs = [(udp(ANYCAST_MAC, a.mac, src, dst), [_hop(a.node, ROUTED_VNET, a.port, None)])]
            if v.node != a.node:        # routed over VXLAN: from the anycast MAC into the victim's port
                legs.append((udp(v.mac, ANYCAST_MAC, src, dst), [_hop(v.node, ROUTED_VNET, VXLAN, v.port)]))
            out[f"routed/intra-vnet-routed{fam}/{where}"] = legs
    return out


def _vlantag():
    out, gw = {}, GATEWAY_MAC
    for g in TAGGED_GUESTS:
        up, down = [_hop(g.node, VLAN_BRIDGE, g.port, VLAN_UPLINK)], [_hop(g.node, VLAN_BRIDGE, VLAN_UPLINK, g.port)]
        out[f"vlantag/ping4-to-gateway/{g.ns}"] = [(echo(g.mac, gw, g.ip4, GATEWAY_IP4), up),
                                                  (echo(gw, g.mac, GATEWAY_IP4, g.ip4, True), down)]
        out[f"vlantag/ping6-to-gateway/{g.ns}"] = [(echo(g.mac, gw, g.ip6, GATEWAY_IP6), up),
                                                  (echo(gw, g.mac, GATEWAY_IP6, g.ip6, True), down)]
    pair = f"{T_A.ns}->{T_B.ns}"
    out[f"vlantag/ipv4-unicast/{pair}"] = [(udp(T_B.mac, T_A.mac, T_A.ip4, T_B.ip4),
                                           [_hop(T_A.node, VLAN_BRIDGE, T_A.port, T_B.port)])]
    out[f"vlantag/ipv4-source-spoof/{pair}"] = [(udp(gw, T_A.mac, T_B.ip4, GATEWAY_IP4),
                                                [_hop(T_A.node, VLAN_BRIDGE, T_A.port, VLAN_UPLINK)])]
    return out


# ---- verdicts -------------------------------------------------------------------------

def tables_from_listings(listings):
    """{node: Table} from {node: `nft -j list table` output (or None)}."""
    X, _ = _lib()
    out = {}
    for node, listing in listings.items():
        objs = listing.get("nftables", []) if isinstance(listing, dict) else (listing or [])
        out[node] = X.from_listing(objs, "bridge", "pve_microseg")
    return out


def verdicts(tables):
    """{check name: ("delivered"|"blocked", where it was decided)}."""
    X, _ = _lib()
    out = {}
    for name, legs in cases().items():
        verdict, where = "delivered", ""
        for frame, hops in legs:
            v, traces = X.path_verdict(tables, frame, hops)
            if v == X.DROP:
                hop, hooks = traces[-1]
                step = hooks[-1].decided_by
                verdict = "blocked"
                where = (f"{frame.summary()}: dropped at {hop.node} {hop.bridge} {hooks[-1].hook} "
                         f"({step.chain} rule {step.position}: {step.comment})" if step else "policy")
                break
        out[name] = (verdict, where)
    return out


def agreement(observed, tables):
    """("pass"|"fail", detail): the evaluator's verdict of every evaluated
    check against what the packets showed (`observed`: {check: (outcome, detail)})."""
    mine = verdicts(tables)
    missing = sorted(n for n in mine if n not in observed)
    wrong = [f"{n}: packets {observed[n][0]}, explain {v} {w}".strip()
             for n, (v, w) in sorted(mine.items()) if n in observed and observed[n][0] != v]
    detail = (f"{len(mine) - len(missing) - len(wrong)} of {len(mine)} checks agree "
              f"(not evaluated: {', '.join(NOT_EVALUATED)}, and every check that is not the fate of frames)")
    if missing:
        detail += f"; not observed: {', '.join(missing)}"
    if wrong:
        detail += "; DISAGREE: " + " | ".join(wrong)
    return ("pass" if not wrong and not missing else "fail"), detail
