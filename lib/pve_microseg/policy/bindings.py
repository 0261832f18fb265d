"""Port security: which MAC and addresses each guest port may send from (pure).

Every guest NIC on a managed bridge whose port security is not `off` gets a
binding for the port(s) Proxmox plugs into the bridge for it (tap/veth, and
fwpr when the NIC has a firewall bridge).  The L2 rules (ruleset.py) drop,
before the bridge learns the source, every frame of a guest port whose
source MAC is not its binding's, and with `mac+ip` every IPv4/IPv6 packet
and ARP message whose source address is not one of its binding's addresses.
A port with no binding at all sends nothing: it fails closed.

The addresses are nicaddr.py's (the same the ipfilter sets get).  Because a
guest owner may put anything in the guest's configuration, nothing of a
gateway is ever bound, a MAC two guests of the cluster configure is bound to
neither, and an address claimed for two guests on one bridge goes to the
higher-ranked claim (the operator's list, then the IPAM, then a guest's own
config) and to neither when they rank alike.  Refused claims are reported;
the ports stay closed for them.  When a guest's config cannot be read, what
it claims is unknown, so no address from a guest's own config is bound.

The mode of a port is the weakest of its bridge's and its guest's setting
(`guests: <vmid>: port-security:` can lower a bridge's, never raise it).
"""

import functools
import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass, field

from ..model.binding import PortBinding
from ..model.bridge import weakest
from ..parse import names
from . import nicaddr


@dataclass(frozen=True)
class Claims:
    """Who claims which MAC (cluster-wide) and which address on which bridge."""

    macs: dict = field(default_factory=dict)        # mac -> frozenset of vmids
    addresses: dict = field(default_factory=dict)   # (bridge, address) -> {vmid: rank}
    complete: bool = True                           # every guest config could be read

    def shared_mac(self, mac, vmid):
        return bool(self.macs.get(mac, frozenset()) - {vmid})

    def claimants(self, bridge, ip, vmid, rank):
        """[(vmid, rank)] of the other guests whose claim on this address
        ranks as high as `rank` or higher."""
        others = self.addresses.get((bridge, _canonical(ip)), {})
        return sorted((v, r) for v, r in others.items() if v != vmid and r >= rank)

    def outranked(self, bridge, ip, vmid, rank):
        """Another guest's claim on this address ranks as high or higher."""
        return bool(self.claimants(bridge, ip, vmid, rank))


def _canonical(ip):
    return str(ipaddress.ip_address(ip))


def claims(guest_configs, cfg, ipam, complete=True, bridges=None):
    """Claims of every guest NIC: its MAC (any bridge), its addresses on a
    managed bridge (or on one of `bridges`) -- the checked ones, with their rank."""
    bridges = cfg.bridge_map if bridges is None else bridges
    macs, addrs = defaultdict(set), defaultdict(dict)
    for gc in guest_configs:
        for nic in gc.nics:
            macs[nic.mac].add(gc.vmid)
            if nic.bridge not in bridges:
                continue
            for ip, rank in nicaddr.nic_addresses(gc, nic, cfg, ipam).tiers:
                key = (nic.bridge, _canonical(ip))
                addrs[key][gc.vmid] = max(addrs[key].get(gc.vmid, rank), rank)
    return Claims({m: frozenset(v) for m, v in macs.items()}, dict(addrs), complete)


@dataclass(frozen=True)
class ClaimQuery:
    """Which other guests' configs can bear on one guest's addresses (the
    guest hookscript reads only those, so that a start does not cost a parse
    of every guest config of the cluster).

    A guest config claims an address on a bridge only if its text names the
    bridge (`bridge=<name>`) and, for an IPv4 address, holds the address as
    written (an IPv4 address has one spelling), for an IPv6 address an
    `ip6=` value that is the address in any spelling."""

    vmid: int
    bridges: frozenset          # the bridges of the guest's NICs
    ipv4: frozenset             # its candidate addresses, IPv4
    ipv6: frozenset             # and IPv6 (canonical)
    scan: bool                  # it has an address from its own config: every config may claim it
    listed: frozenset           # guests that claim one of its candidates in microseg.yaml or the IPAM

    def wanted(self, vmid, text):
        """Whether the config (text) of guest `vmid` must be read."""
        if vmid == self.vmid:
            return False
        if vmid in self.listed:
            return True
        if not self.scan or not any(needle in text for needle in self.needles):
            return False
        if any(ip in text for ip in self.ipv4):
            return True
        return bool(self.ipv6) and "ip6=" in text and any(
            self._is_candidate(m.group(1)) for m in _IP6_VALUE.finditer(text))

    @functools.cached_property
    def needles(self):
        return tuple(f"bridge={b}" for b in self.bridges)

    @functools.cached_property
    def _ipv6_ints(self):
        return frozenset(int(ipaddress.IPv6Address(ip)) for ip in self.ipv6)

    @functools.cached_property
    def _ipv6_lows(self):
        return frozenset(i & 0xFFFF for i in self._ipv6_ints)

    def _is_candidate(self, text):
        """Whether an ip6= value is one of the candidates, in any spelling.
        The last group of a valid address (1-4 hex digits, none after a
        final '::') is its low 16 bits: most values are told apart by it
        without the cost of parsing them."""
        if text in self.ipv6:
            return True
        tail = text.rpartition(":")[2]
        if "." not in tail:
            try:
                if int(tail or "0", 16) not in self._ipv6_lows:
                    return False
            except ValueError:
                return False        # not an address: ipaddress would refuse it too
        try:
            return int(ipaddress.IPv6Address(text)) in self._ipv6_ints
        except ValueError:
            return False


# every value a guest config gives `ip6` (pve-container net<N>, qemu-server ipconfig<N>)
_IP6_VALUE = re.compile(r"ip6=([^,/\s]*)")


def claim_query(guest, cfg, ipam):
    """The ClaimQuery of a guest (GuestConfig): its NICs' candidate addresses
    before the other guests' claims are weighed."""
    bridges, ipv4, ipv6, scan, candidates = set(), set(), set(), False, set()
    for nic in guest.nics:
        if not nic.bridge:
            continue
        bridges.add(nic.bridge)
        for ip, rank in nicaddr.nic_addresses(guest, nic, cfg, ipam).tiers:
            candidates.add(_canonical(ip))
            scan = scan or rank == nicaddr.GUEST
            if ":" in ip:
                ipv6.add(_canonical(ip))
            else:
                ipv4.add(ip)
    listed = {v for v, s in cfg.guests.items()
              if any(_canonical(ip) in candidates for ips in s.addresses.values() for ip in ips)}
    listed |= {names.vmid_or_none(o) for o in map(ipam.owner, candidates) if o is not None} - {None}
    return ClaimQuery(vmid=guest.vmid, bridges=frozenset(bridges), ipv4=frozenset(ipv4), ipv6=frozenset(ipv6),
                      scan=scan, listed=frozenset(listed - {guest.vmid}))


def port_owner(name):
    """(vmid, NIC index) of a guest port name (tap<vmid>i<n>, veth<vmid>i<n>,
    fwpr<vmid>p<n>), or None for any other interface."""
    return names.guest_port(name)


def mode_of(bridge, cfg, vmid):
    settings = cfg.guests.get(vmid)
    return weakest(bridge.port_security, settings.port_security if settings else None)


def guest_bindings(guest, cfg, ipam, claims_=None):
    """GuestConfig -> (bindings, warnings): one PortBinding per port of each
    NIC on a managed bridge with port security on."""
    claims_ = claims_ or claims([guest], cfg, ipam)
    out, warnings = [], []
    for nic in guest.nics:
        bridge = cfg.bridge_map.get(nic.bridge)
        if bridge is None or bridge.port_security == "off":
            continue
        mode = mode_of(bridge, cfg, guest.vmid)
        where = f"guest {guest.vmid} {nic.key} on {bridge.name}"
        if mode == "off":
            binding = dict(mode=mode)
        elif nic.mac in cfg.gateway_macs:
            warnings.append(f"{where}: its MAC {nic.mac} is a gateway's; its port stays closed")
            continue
        elif claims_.shared_mac(nic.mac, guest.vmid):
            others = ", ".join(map(str, sorted(claims_.macs[nic.mac] - {guest.vmid})))
            warnings.append(f"{where}: its MAC {nic.mac} is also configured on guest(s) {others}; "
                            "no guest is bound to it, so its port stays closed")
            continue
        elif mode == "mac":
            binding = dict(mode=mode, mac=nic.mac)
        else:
            known = nicaddr.nic_addresses(guest, nic, cfg, ipam, claims_)
            warnings += [f"guest {guest.vmid} {p}" for p in known.problems]
            ips = known.all
            if not known.found:
                warnings.append(f"{where}: no address is known for MAC {nic.mac}; it may send IPv4 only "
                                f"as a DHCP client and IPv6 only from {known.link_local} "
                                f"(port-security: mac for this guest or bridge lifts that)")
            binding = dict(mode=mode, mac=nic.mac, sources=known.sources,
                           ipv4=tuple(ip for ip in ips if ":" not in ip),
                           ipv6=tuple(ip for ip in ips if ":" in ip))
        for port in dict.fromkeys((guest.port(nic), guest.port(nic, fwbr=True))):
            out.append(PortBinding(port=port, vmid=guest.vmid, nic=nic.key, bridge=bridge.name, **binding))
    return tuple(out), tuple(warnings)


def node_bindings(guest_configs, all_guest_configs, cfg, ipam, complete=True):
    """The bindings of the guests of one node, decided with the claims of
    every guest of the cluster (complete: all their configs could be read)
    -> (bindings by port, warnings)."""
    claims_ = claims(all_guest_configs, cfg, ipam, complete)
    out, warnings = [], []
    for gc in guest_configs:
        b, w = guest_bindings(gc, cfg, ipam, claims_)
        out += b
        warnings += w
    return tuple(sorted(out, key=lambda b: b.port)), tuple(warnings)
