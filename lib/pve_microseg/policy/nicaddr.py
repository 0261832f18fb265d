"""Which addresses a guest's NIC may send from, and where they come from (pure).

The one answer, used both for the guest firewall's ipfilter sets
(antispoof.py) and for the port bindings of the L2 rules (bindings.py):

1. microseg.yaml `guests: <vmid>: net<N>` -- the operator's word; when
   present it is the whole list (nothing is added from 2-4);
2. otherwise the union of
   2. the SDN IPAM (pve-ipam-state.json, or the legacy priv/ipam.db), by
      VMID and MAC;
   3. a VM's cloud-init `ipconfig<N>` static `ip=`/`ip6=`;
   4. a container's static `ip=`/`ip6=` on `net<N>`;

and always the NIC's EUI-64 IPv6 link-local.  Only host addresses.

2-4 can be edited by whoever may edit the guest's config, so they are
checked: never a gateway's address, never outside the managed bridge's
subnets nor their network or broadcast address, never an address no host
can have (loopback, multicast, unspecified, IPv4-mapped), never an address
IPAM gives to another guest, never a link-local address but the NIC's own.
The operator's list is checked only for gateway, network and broadcast
addresses (parse/microseg_yaml.py refuses the rest).  A refused address is
left out and named in `problems`.

Each address keeps its source's rank (`tiers`): the operator's list
outranks the IPAM, which outranks what the guest's config says.  Given the
claims of the other guests (bindings.Claims), an address another guest
claims on the same bridge as firmly or more is left out too, naming that
guest -- alike in rank, neither gets it -- and, when a guest config could
not be read, every address from the NIC's own config.
"""

import ipaddress
from dataclasses import dataclass

from ..parse import addresses


OPERATOR, IPAM, GUEST = 3, 2, 1     # who said an address is the NIC's: higher outranks lower


@dataclass(frozen=True)
class NicAddresses:
    found: tuple             # host addresses from the sources, checked (no link-local added)
    sources: tuple           # where they came from
    problems: tuple          # addresses refused, with the reason
    link_local: str          # the NIC's EUI-64 link-local
    tiers: tuple = ()        # (address, OPERATOR|IPAM|GUEST) for each of `found`

    @property
    def all(self):
        """Every address the NIC may use, sorted: IPv4, IPv6, link-local last."""
        return sort(self.found + (self.link_local,))


def sort(addrs):
    ips = {ipaddress.ip_address(a) for a in addrs}
    return tuple(str(ip) for ip in sorted(ips, key=lambda ip: (ip.version, ip.is_link_local, int(ip))))


def _refusal(ip, bridge, gateways, ipam, vmid):
    """Why a guest-supplied address may not be used, or None."""
    addr = ipaddress.ip_address(ip)
    if addr in gateways:
        return f"{ip} is a gateway address"
    why = addresses.unusable(addr)
    if why:
        return why
    if addr.is_link_local:
        return f"{ip} is a link-local address (a NIC's own EUI-64 link-local is always added)"
    if bridge is not None and bridge.subnets and not any(
            addr.version == n.version and addr in n for n in bridge.subnets):
        return f"{ip} is outside the subnets of {bridge.name} ({', '.join(map(str, bridge.subnets))})"
    why = addresses.subnet_role(addr, bridge.subnets) if bridge is not None else None
    if why:
        return why
    owner = ipam.owner(ip)
    if owner is not None and owner != str(vmid):
        return f"{ip} belongs to guest {owner} in the IPAM"
    return None


_RANK_NAMES = {OPERATOR: "in microseg.yaml guests:", IPAM: "in the IPAM", GUEST: "in its own config"}


def _claimed(ip, rank, nic, vmid, claims):
    """Why another guest's claim (Claims, policy/bindings.py) takes this
    address from the NIC, or None."""
    if claims is None:
        return None
    others = claims.claimants(nic.bridge, ip, vmid, rank)
    if others:
        named = "; ".join(f"guest {v} {_RANK_NAMES[r]}" for v, r in others)
        return (f"{ip} is also claimed on {nic.bridge} for {named}, as firmly or more "
                "(microseg.yaml guests: outranks the IPAM, which outranks a guest's own config)")
    if rank == GUEST and not claims.complete:
        return (f"{ip} comes from its own config, and a guest config of the cluster could not be read "
                "(it may claim the address too)")
    return None


def nic_addresses(guest, nic, cfg, ipam, claims=None):
    """GuestConfig, Nic, model.config.Config, IpamState -> NicAddresses.

    With `claims` (bindings.Claims of the other guests), an address another
    guest claims on the same bridge as firmly or more is left out, and, when
    a guest config could not be read, every address from the NIC's own
    config (it may be another guest's)."""
    settings = cfg.guests.get(guest.vmid)
    given = settings.addresses.get(nic.index) if settings else None
    link_local = str(addresses.eui64_link_local(nic.mac))
    bridge = cfg.bridge_map.get(nic.bridge)
    if given is not None:
        where = f"microseg.yaml guests.{guest.vmid}.{nic.key}"
        candidates = ((where, OPERATOR, given, lambda ip: _given_refusal(ip, bridge, cfg.gateway_ips)),)
    else:
        refusal = (lambda ip: _refusal(ip, bridge, cfg.gateway_ips, ipam, guest.vmid))
        candidates = (("IPAM", IPAM, ipam.addresses(guest.vmid, nic.mac), refusal),
                      (nic.static_from, GUEST, nic.static, refusal))
    found, sources, problems, tiers = [], [], [], {}
    for source, tier, ips, refused in candidates:
        kept = []
        for ip in ips:
            why_not = refused(ip) or _claimed(ip, max(tiers.get(ip, tier), tier), nic, guest.vmid, claims)
            if why_not:
                problems.append(f"{nic.key}: {why_not} (from {source}); left out")
            else:
                kept.append(ip)
                tiers[ip] = max(tiers.get(ip, tier), tier)
        if kept:
            found += kept
            sources.append(source)
    return NicAddresses(found=tuple(found), sources=tuple(sources), problems=tuple(problems),
                        link_local=link_local, tiers=tuple(tiers.items()))


def _given_refusal(ip, bridge, gateways):
    """Why an address of the operator's list may not be used, or None (the
    operator's word: only what no host can have)."""
    addr = ipaddress.ip_address(ip)
    if addr in gateways:
        return f"{ip} is a gateway address"
    return addresses.subnet_role(addr, bridge.subnets) if bridge is not None else None
