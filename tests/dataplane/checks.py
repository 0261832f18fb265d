"""The dataplane matrix: named properties, what each mode expects, and how
each is observed.

kinds:
  gateway    the gateway path a guest needs; must be "delivered" in every mode
  attack     what a compromised guest (g101) tries against a victim on the same
             node (g102 CT, g103 VM behind fwbr) or on the other node (g201);
             "delivered" without rules (mode none: proves the check can fail),
             "blocked" with pve-microseg
  lifecycle  ifupdown2 keeping the rules in step with the network config;
             "pass" (microseg mode only)
  hookscript the guest hookscript on the real kernel: sets written, plain-
             bridge ports isolated at post-start, strict refusal; "pass"
             (microseg mode only; see hookscript.py)
  portsec    a guest created after apply, without the hookscript: closed until
             the udev rule's command binds its port, bound after, kept on
             re-plug, unbound on removal; "pass" (microseg mode; portsec.py)
  routed     (kinds gateway and attack) the zone where the node is the
             gateway: guests reach it and what it routes to, not each other
             through it (routed.py)
  vlantag    (kinds gateway and attack) NICs with tag= on a managed plain
             bridge, plugged into <bridge>v<tag> (vlantag.py)
  hostile    the if-up.d hook with a configuration it cannot read (40,000
             levels of nesting, 2 MiB, not UTF-8, a directory, no
             permission) and state directories it cannot write (read-only,
             full, a file in place of one): vnet1's rules still load,
             guest -> guest blocked, guest -> gateway works; "pass"
             (microseg mode; hostile.py)
  drops      one attack frame of each class g101 can provoke on its node:
             its port's counter of exactly that class rose, the victims'
             did not (`status --local` on the real kernel); "pass"
             (microseg mode; drops.py)
  droplog    with `log: on`, repeated attack frames from g101 give exactly one
             kernel log line of their class for its port and are all
             dropped; with log off again, none; "pass" (microseg mode;
             droplog.py)
  explain    the evaluator behind `pve-microseg explain` gives, for every
             check above that is the fate of frames, the verdict the real
             packets showed, on the tables they met; "pass" in both modes
             (explained.py)
  golden     the kernel's listing of each tests/golden/ scenario equals its
             reviewed .nft file; "pass" (microseg mode only; see rulesets.py)

The matrix is static (pytest parametrizes on it on the host); the run
functions below execute it inside the QEMU guest.
"""

import re
import socket
import time
from dataclasses import dataclass

from . import frames as F, netns
from .probes import (GATEWAY, Wire, address_state, fdb_ports, neighbour_mac, pings, seen, set_neighbours,
                     udp_send)
from .topology import (FABRIC_NS, GATEWAY_IF, GATEWAY_IP4, GATEWAY_IP6, GATEWAY_MAC, GATEWAY_NS, GUEST, GUESTS,
                       SWITCH, VNET1)

DELIVERED, BLOCKED, PASS, FAIL = "delivered", "blocked", "pass", "fail"
MODES = ("none", "microseg")

ATTACKER = GUEST[101]
VICTIMS = (GUEST[102], GUEST[103], GUEST[201])

# property -> what is checked
GATEWAY_PROPS = {
    "arp-gateway": "ARP request for the gateway's IPv4 reaches the gateway, its reply reaches the guest",
    "nd-gateway": "ND solicitation for the gateway's IPv6 reaches the gateway, its advertisement the guest",
    "ping4-to-gateway": "ping guest -> gateway (IPv4)",
    "ping6-to-gateway": "ping guest -> gateway (IPv6)",
    "ping4-from-gateway": "ping gateway -> guest (IPv4)",
    "ping6-from-gateway": "ping gateway -> guest (IPv6)",
    "dhcp-discover": "the guest's DHCP DISCOVER broadcast reaches the gateway",
    "dhcp-offer-from-gateway": "the gateway's DHCP OFFER reaches the guest",
    "dad": "duplicate address detection: the guest's IPv6 address, added again without nodad, leaves "
           "the tentative state and then reaches the gateway",
}

# property -> (what the attacker sends, what it would let a guest do)
ATTACK_PROPS = {
    "arp-request": ("ARP who-has <victim IPv4>, broadcast",
                    "discover other guests and their MACs (network scanning)"),
    "nd-solicit": ("ND solicitation for <victim IPv6> to its solicited-node group",
                   "discover other guests over IPv6"),
    "ipv4-unicast": ("UDP to <victim IPv4> with a static neighbour entry",
                     "talk to another guest directly over IPv4, bypassing the gateway and its firewall"),
    "ipv6-unicast": ("UDP to <victim IPv6> with a static neighbour entry",
                     "talk to another guest directly over IPv6, bypassing the gateway and its firewall"),
    "ipv4-broadcast": ("UDP to 10.100.0.255, Ethernet broadcast",
                       "reach every guest at once (broadcast services, amplification)"),
    "ipv6-multicast": ("UDP to ff02::1 (all nodes)",
                       "reach every guest at once over IPv6 multicast"),
    "ethertype-broadcast": ("ethertype 0x88b5 broadcast",
                            "use non-IP protocols no IP filter inspects"),
    "dhcp-offer": ("DHCP OFFER from the guest (rogue DHCP server)",
                   "hand out itself as router/DNS and intercept other guests' traffic"),
    "ipv6-ra": ("ICMPv6 router advertisement (rogue router)",
                "announce itself as IPv6 router and intercept other guests' traffic"),
    "gateway-ip-source": ("UDP with the gateway's IPv4 as source",
                          "impersonate the gateway at IP level"),
    "garp-gateway": ("gratuitous ARP claiming the gateway's IPv4",
                     "poison other guests' ARP cache and become their gateway (man in the middle)"),
    "arp-reply-gateway": ("ARP reply claiming the gateway's IPv4",
                          "poison another guest's ARP cache for the gateway (man in the middle)"),
    "na-gateway": ("unsolicited ND advertisement claiming the gateway's IPv6",
                   "poison other guests' IPv6 neighbour cache for the gateway (man in the middle)"),
    "gateway-mac-source": ("frame with the gateway's MAC as source",
                           "poison bridge FDBs so other guests' gateway traffic is sent to it"),
    "mac-steal": ("frame to the gateway with <victim MAC> as source",
                  "poison bridge FDBs so the gateway's traffic for the victim is sent to it"),
    "arp-sender-spoof": ("ARP request for the gateway with <victim IPv4> as sender address",
                         "poison the gateway's neighbour entry for the victim (man in the middle)"),
    "ipv4-source-spoof": ("UDP to the gateway from <victim IPv4>",
                          "send as the victim (reflection, forged requests, blame)"),
    "ipv6-source-spoof": ("UDP to the gateway from <victim IPv6>",
                          "send as the victim over IPv6"),
    "na-claim-guest": ("ND advertisement to the gateway claiming <victim IPv6>, sent from the attacker's "
                       "own MAC and address",
                       "poison the gateway's neighbour entry for the victim over IPv6 (man in the middle)"),
}
# Attacks pve-microseg cannot block on a release, and says so (README, limits):
# nftables 1.0.6 (Debian 12) cannot match a neighbour advertisement's target
# against the port's addresses; 1.1 (Debian 13) can.
OPEN_ON = {"na-claim-guest": ("bookworm",)}


def release():
    """The Debian release this runs on (VERSION_CODENAME of /etc/os-release)."""
    try:
        text = open("/etc/os-release").read()
    except OSError:
        return None
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    return m.group(1) if m else None

# explained.py: the evaluator's verdict of every check above that is the fate of frames
EXPLAIN_CHECK = "explain/agrees-with-kernel"
EXPLAIN_DESCRIPTION = ("pve-microseg's evaluator (explain), given the frames of every gateway, attack, routed and "
                       "tagged-NIC check and the nodes' loaded tables, gives the verdict the packets showed")

LIFECYCLE_PROPS = {
    "hook-loads-rules": "the ifupdown2 run that brought the network up (ifup -a at boot, or ifreload -a after install) loaded table bridge pve_microseg with vnet1 on every node",
    "ifreload-adds-bridge": "after adding vnet2 to microseg.yaml and interfaces.d/sdn, ifreload -a adds vnet2's rules",
    "ifreload-keeps-isolation": "after ifreload -a, g101 -> g102 ARP is still blocked",
    "ifdown-removes-bridge": "ifdown vnet1 removes vnet1's rules and keeps vnet2's",
    "status-local-reads-kernel": "pve-microseg status --local (the installed CLI) reads the kernel's table: "
                                 "on node2 vnet1 present with rules; on node1 after ifdown vnet1, exit 9 or vnet1 not present",
}


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    prop: str
    description: str
    impact: str = ""

    def expected(self, mode, release=None):
        if self.kind == "gateway":
            return DELIVERED
        if self.kind == "attack":
            if mode == "microseg" and release not in OPEN_ON.get(self.prop, ()):
                return BLOCKED
            return DELIVERED
        return PASS


def pair(attacker, victim):
    return f"{attacker.ns}->{victim.ns}"


def matrix(mode):
    """Every check run in `mode`, in report order."""
    checks = [Check(f"{p}/{g.ns}", "gateway", p, f"{d} [{g.label}]")
              for p, d in GATEWAY_PROPS.items() for g in GUESTS]
    checks += [Check(f"{p}/{pair(ATTACKER, v)}", "attack", p,
                     f"{what} from {ATTACKER.label} to {v.label}", impact)
               for p, (what, impact) in ATTACK_PROPS.items() for v in VICTIMS]
    from .routed import matrix_rows as routed_rows
    from .vlantag import matrix_rows as vlantag_rows
    checks += [Check(*row) for row in routed_rows() + vlantag_rows()]
    checks.append(Check(EXPLAIN_CHECK, "explain", "agrees-with-kernel", EXPLAIN_DESCRIPTION))
    if mode == "microseg":
        from .hookscript import PROPS as HOOKSCRIPT_PROPS
        from .portsec import PROPS as PORTSEC_PROPS
        checks += [Check(f"portsec/{p}", "portsec", p, d) for p, d in PORTSEC_PROPS.items()]
        checks += [Check(f"ifupdown2/{p}", "lifecycle", p, d) for p, d in LIFECYCLE_PROPS.items()]
        checks += [Check(f"hookscript/{p}", "hookscript", p, d) for p, d in HOOKSCRIPT_PROPS.items()]
        from .rulesets import PROPS as GOLDEN_PROPS
        checks += [Check(f"golden/{p}", "golden", p, d) for p, d in GOLDEN_PROPS.items()]
        from .hostile import PROPS as HOSTILE_PROPS
        checks += [Check(f"hostile/{p}", "hostile", p, d) for p, d in HOSTILE_PROPS.items()]
        from .drops import PROPS as DROPS_PROPS
        checks += [Check(f"drops/{p}", "drops", p, d) for p, d in DROPS_PROPS.items()]
        from .droplog import PROPS as DROPLOG_PROPS
        checks += [Check(f"droplog/{p}", "droplog", p, d) for p, d in DROPLOG_PROPS.items()]
        from .package import PROPS as PACKAGE_PROPS
        checks += [Check(f"package/{p}", "package", p, d) for p, d in PACKAGE_PROPS.items()]
    return checks


# ---- running (inside the guest) ---------------------------------------------------

def _delivered(ok):
    return DELIVERED if ok else BLOCKED


def run_gateway_path(wire):
    """ARP/ND/DHCP with the gateway, batched in one capture window; then pings."""
    sends, expect = [], {}
    for g in GUESTS:
        n_arp, n_ns, n_disc, n_offer = (F.new_nonce() for _ in range(4))
        sends += [
            (g.ns, F.arp_request(g.mac, g.ip4, GATEWAY_IP4, n_arp)),
            (g.ns, F.neighbor_solicitation(g.mac, g.ip6, GATEWAY_IP6, n_ns)),
            (g.ns, F.dhcp_discover(g.mac, n_disc)),
            (GATEWAY, F.dhcp_offer(GATEWAY_MAC, GATEWAY_IP4, g.mac, g.ip4, n_offer)),
        ]
        expect[g] = (n_arp, n_ns, n_disc, n_offer)
    cap = wire.exchange(sends, seconds=1.5, expect=[
        e for g, (n_arp, n_ns, n_disc, n_offer) in expect.items()
        for e in ((GATEWAY, n_arp), (GATEWAY, n_ns), (GATEWAY, n_disc), (g.ns, n_offer))])
    out = {}
    for g, (n_arp, n_ns, n_disc, n_offer) in expect.items():
        arp_reply = any((f.arp or (0,))[0] == F.ARP_REPLY and f.arp[2] == GATEWAY_IP4 and f.arp[3] == g.mac
                        for f in cap[g.ns])
        na = any((f.icmpv6 or (0,))[0] == F.ICMP6_NA and f.icmpv6[3] == GATEWAY_IP6 for f in cap[g.ns])
        at_gw = seen(cap, GATEWAY, n_arp)
        ns_at_gw = seen(cap, GATEWAY, n_ns)
        out[f"arp-gateway/{g.ns}"] = (_delivered(at_gw and arp_reply),
                                      f"request at gateway: {at_gw}; reply at guest: {arp_reply}")
        out[f"nd-gateway/{g.ns}"] = (_delivered(ns_at_gw and na),
                                     f"NS at gateway: {ns_at_gw}; NA at guest: {na}")
        out[f"dhcp-discover/{g.ns}"] = (_delivered(seen(cap, GATEWAY, n_disc)), "sniffed on gateway gw0.100")
        out[f"dhcp-offer-from-gateway/{g.ns}"] = (_delivered(seen(cap, g.ns, n_offer)), f"sniffed on {g.ns} eth0")

    jobs = {}
    for g in GUESTS:
        jobs[f"ping4-to-gateway/{g.ns}"] = (g.ns, GATEWAY_IP4)
        jobs[f"ping6-to-gateway/{g.ns}"] = (g.ns, GATEWAY_IP6)
        jobs[f"ping4-from-gateway/{g.ns}"] = ("gateway", g.ip4)
        jobs[f"ping6-from-gateway/{g.ns}"] = ("gateway", g.ip6)
    for key, (ok, line) in pings(jobs).items():
        out[key] = (_delivered(ok), line)
    out.update(run_dad())
    return out


def run_dad():
    """Each guest re-adds its IPv6 address with duplicate address detection
    (NS from ::): it must become usable and reach the gateway."""
    for g in GUESTS:
        netns.sysctl(g.ns, {"ipv6/conf/eth0/accept_dad": 1, "ipv6/conf/eth0/dad_transmits": 1})
        netns.ip_batch(g.ns, [f"addr del {g.ip6}/64 dev eth0", f"addr add {g.ip6}/64 dev eth0"])
    deadline, states = time.monotonic() + 5, {}
    while time.monotonic() < deadline:
        states = {g: address_state(g.ns, g.ip6) for g in GUESTS}
        if all("tentative" not in s for s in states.values()):
            break
        time.sleep(0.2)
    for g in GUESTS:        # the default route may have gone with the address
        netns.run(["ip", "-n", g.ns, "-6", "route", "replace", "default", "via", GATEWAY_IP6, "dev", "eth0"],
                  check=False)
    ping = pings({g: (g.ns, GATEWAY_IP6) for g in GUESTS})
    return {f"dad/{g.ns}": (_delivered("tentative" not in states[g] and "dadfailed" not in states[g]
                                       and ping[g][0]),
                            f"address flags {sorted(states[g]) or ['none']}; ping6 gateway: {ping[g][1]}")
            for g in GUESTS}


def run_attacks_on_the_wire(wire, attacker=ATTACKER, victims=VICTIMS, props=None):
    """The attacks without lasting side effects, all in one capture window."""
    a = attacker
    sends, expect = [], {}     # expect: check name -> (victim, nonce)

    def add(prop, victim, nonce, frame=None):
        expect[f"{prop}/{pair(a, victim)}"] = (victim, nonce)
        if frame is not None:
            sends.append((a.ns, frame))

    # one frame each, seen (or not) by every victim
    shared = {p: F.new_nonce() for p in ("ipv4-broadcast", "ipv6-multicast", "ethertype-broadcast", "ipv6-ra")}
    sends += [
        (a.ns, F.udp4_frame(F.BROADCAST, a.mac, a.ip4, f"{VNET1.subnet4}.255", 9999, 9999,
                            shared["ipv4-broadcast"])),
        (a.ns, F.ethernet(F.multicast_mac6("ff02::1"), a.mac, F.ETH_P_IPV6,
                          F.ipv6(a.ip6, "ff02::1", F.IPPROTO_UDP,
                                 F.udp(a.ip6, "ff02::1", 9999, 9999, shared["ipv6-multicast"]), 1))),
        (a.ns, F.raw_ethertype(F.BROADCAST, a.mac, shared["ethertype-broadcast"])),
        (a.ns, F.router_advertisement(a.mac, F.link_local(a.mac), shared["ipv6-ra"])),
    ]
    unicast = []
    for v in victims:
        for p, n in shared.items():
            add(p, v, n)
        n = F.new_nonce()
        add("arp-request", v, n, F.arp_request(a.mac, a.ip4, v.ip4, n))
        n = F.new_nonce()
        add("nd-solicit", v, n, F.neighbor_solicitation(a.mac, a.ip6, v.ip6, n))
        n = F.new_nonce()
        add("dhcp-offer", v, n, F.dhcp_offer(a.mac, a.ip4, v.mac, v.ip4, n))
        n = F.new_nonce()
        add("gateway-ip-source", v, n, F.udp4_frame(v.mac, a.mac, GATEWAY_IP4, v.ip4, 53, 9999, n))
        for fam, addr in ((4, v.ip4), (6, v.ip6)):
            n = F.new_nonce()
            add(f"ipv{fam}-unicast", v, n)
            unicast.append((fam, addr, n))

    # unicast through the attacker's kernel, with static neighbour entries
    set_neighbours(a.ns, [(ip, v.mac) for v in victims for ip in (v.ip4, v.ip6)])
    wire.drain()
    for endpoint, frame in sends:
        wire.send(endpoint, frame)
    for fam, addr, n in unicast:
        udp_send(a.ns, socket.AF_INET if fam == 4 else socket.AF_INET6, addr, n)
    cap = wire.capture(1.0, expect=[(v.ns, n) for v, n in expect.values()])
    out = {}
    for name, (v, n) in expect.items():
        if props is None or name.split("/")[0] in props:
            out[name] = (_delivered(seen(cap, v.ns, n)), f"sniffed on {v.ns} eth0")
    return out


def _prime_gateway_neighbours(victims):
    """Victims hold a (stale) entry for the gateway, as after normal traffic."""
    for v in victims:
        set_neighbours(v.ns, [(GATEWAY_IP4, GATEWAY_MAC), (GATEWAY_IP6, GATEWAY_MAC)], state="stale")
    time.sleep(0.05)    # an update in the same jiffy as this one would not override it


def _relearn_gateway(wire):
    """The gateway speaks (a gratuitous ARP): every FDB on the path learns it again."""
    wire.send(GATEWAY, F.gratuitous_arp(GATEWAY_MAC, GATEWAY_IP4, F.new_nonce()))
    time.sleep(0.1)


def run_spoofing(wire, attacker=ATTACKER, victims=VICTIMS):
    """Claims on the gateway's addresses: each is followed by a look at the
    victims' neighbour tables, and a restore."""
    a, out = attacker, {}
    spoofs = {
        "garp-gateway": lambda v, n: F.gratuitous_arp(a.mac, GATEWAY_IP4, n),
        "arp-reply-gateway": lambda v, n: F.arp_reply(a.mac, GATEWAY_IP4, v.mac, v.ip4, n),
        "na-gateway": lambda v, n: F.neighbor_advertisement(a.mac, GATEWAY_IP6, n),
    }
    for prop, build in spoofs.items():
        _prime_gateway_neighbours(victims)
        nonces = {v: F.new_nonce() for v in victims}
        cap = wire.exchange([(a.ns, build(v, nonces[v])) for v in victims], seconds=0.5,
                            expect=[(v.ns, n) for v, n in nonces.items()])
        gw_ip = GATEWAY_IP6 if prop == "na-gateway" else GATEWAY_IP4
        for v in victims:
            sniffed = seen(cap, v.ns, nonces[v])
            mac = neighbour_mac(v.ns, gw_ip)
            poisoned = mac is not None and mac != GATEWAY_MAC
            out[f"{prop}/{pair(a, v)}"] = (_delivered(sniffed or poisoned),
                                           f"sniffed on {v.ns}: {sniffed}; {v.ns} neighbour {gw_ip} -> {mac}")
    _prime_gateway_neighbours(victims)
    return out


def run_fdb_poisoning(wire, attacker=ATTACKER, victims=VICTIMS):
    """A broadcast frame with the gateway's MAC as source, then, at once, each
    victim sends a datagram to the gateway: poisoned FDBs deliver it to the
    attacker instead.  Then the FDBs, and pings both ways."""
    a, out = attacker, {}
    _prime_gateway_neighbours(victims)
    _relearn_gateway(wire)
    spoof = {v: F.new_nonce() for v in victims}
    cap = wire.exchange([(a.ns, F.udp4_frame(F.BROADCAST, GATEWAY_MAC, GATEWAY_IP4, f"{VNET1.subnet4}.255",
                                             67, 68, n)) for n in spoof.values()],
                        seconds=0.5, expect=[(v.ns, n) for v, n in spoof.items()])
    to_gw = {v: F.new_nonce() for v in victims}
    wire.drain()
    for v, n in to_gw.items():          # through the victim's kernel: dst = its gateway neighbour entry
        udp_send(v.ns, socket.AF_INET, GATEWAY_IP4, n)
    diverted_cap = wire.capture(0.5, expect=[(GATEWAY, n) for n in to_gw.values()])
    node_fdb = fdb_ports(a.node, VNET1.name, GATEWAY_MAC)
    sw_fdb = fdb_ports(FABRIC_NS, SWITCH, GATEWAY_MAC)
    ping_to = pings({v: (v.ns, GATEWAY_IP4) for v in victims})
    ping_from = pings({v: ("gateway", v.ip4) for v in victims})     # last: the gateway's frames heal FDBs
    guest_ports = [p for p in node_fdb if p.startswith(("tap", "veth", "fwpr", "fwln"))]
    for v in victims:
        sniffed = seen(cap, v.ns, spoof[v])
        diverted = seen(diverted_cap, a.ns, to_gw[v])
        reached = seen(diverted_cap, GATEWAY, to_gw[v])
        poisoned = guest_ports if v.node == a.node else [p for p in sw_fdb if p != "sw-gw"]
        intact = reached and ping_to[v][0] and ping_from[v][0]
        out[f"gateway-mac-source/{pair(a, v)}"] = (
            _delivered(sniffed or diverted or bool(poisoned) or not intact),
            f"spoof sniffed on {v.ns}: {sniffed}; then {v.ns}'s datagram to the gateway: "
            f"{'captured by ' + a.ns if diverted else 'not at ' + a.ns}, {'reached' if reached else 'MISSED'} "
            f"the gateway; {a.node} vnet1 FDB {GATEWAY_MAC} on {node_fdb}; switch FDB on {sw_fdb}; "
            f"ping {v.ns} -> gateway {'ok' if ping_to[v][0] else 'FAILED'}, "
            f"gateway -> {v.ns} {'ok' if ping_from[v][0] else 'FAILED'}")
    _relearn_gateway(wire)
    return out


def run_source_spoofing(wire, attacker=ATTACKER, victims=VICTIMS):
    """Sending as another guest towards the gateway: its IPv4/IPv6 address as
    source (the gateway's sniffer is the judge), its IPv4 address as ARP sender
    (the gateway's neighbour table is the judge)."""
    a, out = attacker, {}
    sends, expect = [], {}
    for v in victims:
        for fam, src, gw in ((4, v.ip4, GATEWAY_IP4), (6, v.ip6, GATEWAY_IP6)):
            n = F.new_nonce()
            frame = (F.udp4_frame(GATEWAY_MAC, a.mac, src, gw, 9999, 9999, n) if fam == 4 else
                     F.ethernet(GATEWAY_MAC, a.mac, F.ETH_P_IPV6,
                                F.ipv6(src, gw, F.IPPROTO_UDP, F.udp(src, gw, 9999, 9999, n))))
            sends.append((a.ns, frame))
            expect[f"ipv{fam}-source-spoof/{pair(a, v)}"] = n
    cap = wire.exchange(sends, seconds=1.0, expect=[(GATEWAY, n) for n in expect.values()])
    for name, n in expect.items():
        out[name] = (_delivered(seen(cap, GATEWAY, n)), "sniffed on gateway gw0.100")
    out.update(_claims_at_gateway(wire, a, victims, "arp-sender-spoof", lambda v: v.ip4,
                                  lambda v, n: F.arp(F.ARP_REQUEST, a.mac, a.mac, v.ip4, "00:00:00:00:00:00",
                                                     GATEWAY_IP4, n)))
    return out


def _claims_at_gateway(wire, a, victims, prop, address, build):
    """Claims of each victim's `address` sent to the gateway by the attacker
    (`build(victim, nonce)`): the gateway's neighbour entry for the victim
    (stale, as after traffic) is the judge, and the gateway's sniffer."""
    out = {}
    for v in victims:
        set_neighbours(GATEWAY_NS, [(address(v), v.mac)], state="stale", dev=GATEWAY_IF)
        time.sleep(0.05)
        n = F.new_nonce()
        cap = wire.exchange([(a.ns, build(v, n))], seconds=0.5, expect=[(GATEWAY, n)])
        mac = neighbour_mac(GATEWAY_NS, address(v), GATEWAY_IF)
        out[f"{prop}/{pair(a, v)}"] = (
            _delivered(seen(cap, GATEWAY, n) or mac == a.mac),
            f"sniffed on gateway: {seen(cap, GATEWAY, n)}; gateway neighbour {address(v)} -> {mac}")
        set_neighbours(GATEWAY_NS, [(address(v), v.mac)], state="stale", dev=GATEWAY_IF)
    return out


def run_na_claims(wire, attacker=ATTACKER, victims=VICTIMS):
    """A neighbour advertisement to the gateway (unicast, override) that
    claims the victim's IPv6 address for the attacker's MAC, sent from the
    attacker's own bound MAC and address."""
    a = attacker
    return _claims_at_gateway(wire, a, victims, "na-claim-guest", lambda v: v.ip6,
                              lambda v, n: F.neighbor_advertisement(a.mac, v.ip6, n, dst=GATEWAY_IP6,
                                                                    dst_mac=GATEWAY_MAC, src=a.ip6))


def run_mac_steal(wire, attacker=ATTACKER, victims=VICTIMS):
    """A frame to the gateway with the victim's MAC as source; then the gateway
    sends the victim a datagram: a poisoned FDB delivers it to the attacker."""
    a, out = attacker, {}
    for v in victims:
        set_neighbours(GATEWAY_NS, [(v.ip4, v.mac)], dev=GATEWAY_IF)      # the gateway knows the victim
        pings({v: (v.ns, GATEWAY_IP4)})                                   # every FDB learns where it is
        n_spoof, n_back = F.new_nonce(), F.new_nonce()
        cap = wire.exchange([(a.ns, F.udp4_frame(GATEWAY_MAC, v.mac, a.ip4, GATEWAY_IP4, 9999, 9999, n_spoof))],
                            seconds=0.3, expect=[(GATEWAY, n_spoof)])
        node_fdb = fdb_ports(a.node, VNET1.name, v.mac)
        sw_fdb = fdb_ports(FABRIC_NS, SWITCH, v.mac)
        wire.drain()
        udp_send(GATEWAY_NS, socket.AF_INET, v.ip4, n_back)
        back = wire.capture(0.5, expect=[(v.ns, n_back)])
        diverted, reached = seen(back, a.ns, n_back), seen(back, v.ns, n_back)
        out[f"mac-steal/{pair(a, v)}"] = (
            _delivered(seen(cap, GATEWAY, n_spoof) or diverted or not reached),
            f"spoof at gateway: {seen(cap, GATEWAY, n_spoof)}; then the gateway's datagram for {v.ns}: "
            f"{'captured by ' + a.ns if diverted else 'not at ' + a.ns}, {'reached' if reached else 'MISSED'} "
            f"{v.ns}; {a.node} vnet1 FDB {v.mac} on {node_fdb}; switch FDB on {sw_fdb}")
        netns.run(["ip", "-n", GATEWAY_NS, "neigh", "del", v.ip4, "dev", GATEWAY_IF], check=False)
        pings({v: (v.ns, GATEWAY_IP4)})                                   # heal the FDBs
    return out


def run_traffic(wire=None):
    """Gateway path, then attacks; {check name: (observed, detail)}."""
    own = wire is None
    wire = wire or Wire()
    try:
        out = run_gateway_path(wire)
        out.update(run_attacks_on_the_wire(wire))
        out.update(run_spoofing(wire))
        out.update(run_fdb_poisoning(wire))
        out.update(run_source_spoofing(wire))
        out.update(run_na_claims(wire))
        out.update(run_mac_steal(wire))
        return out
    finally:
        if own:
            wire.close()
