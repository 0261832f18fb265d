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
subnets, never an address IPAM gives to another guest, never a link-local
address but the NIC's own.  A refused address is left out and named in
`problems`.  Each address keeps its source's rank (`tiers`): the operator's
list outranks the IPAM, which outranks what the guest's config says.
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
    if addr.is_link_local:
        return f"{ip} is a link-local address (a NIC's own EUI-64 link-local is always added)"
    if bridge is not None and bridge.subnets and not addr.is_link_local and not any(
            addr.version == n.version and addr in n for n in bridge.subnets):
        return f"{ip} is outside the subnets of {bridge.name} ({', '.join(map(str, bridge.subnets))})"
    owner = ipam.owner(ip)
    if owner is not None and owner != str(vmid):
        return f"{ip} belongs to guest {owner} in the IPAM"
    return None


def nic_addresses(guest, nic, cfg, ipam):
    """GuestConfig, Nic, model.config.Config, IpamState -> NicAddresses."""
    settings = cfg.guests.get(guest.vmid)
    given = settings.addresses.get(nic.index) if settings else None
    link_local = str(addresses.eui64_link_local(nic.mac))
    if given is not None:
        where = f"microseg.yaml guests.{guest.vmid}.{nic.key}"
        bad = [ip for ip in given if ipaddress.ip_address(ip) in cfg.gateway_ips]
        found = tuple(ip for ip in given if ip not in bad)
        return NicAddresses(found=found, sources=(where,),
                            problems=tuple(f"{nic.key}: {ip} in {where} is a gateway address" for ip in bad),
                            link_local=link_local, tiers=tuple((ip, OPERATOR) for ip in found))
    found, sources, problems, tiers = [], [], [], {}
    bridge = cfg.bridge_map.get(nic.bridge)
    for source, tier, ips in (("IPAM", IPAM, ipam.addresses(guest.vmid, nic.mac)),
                              (nic.static_from, GUEST, nic.static)):
        kept = []
        for ip in ips:
            why_not = _refusal(ip, bridge, cfg.gateway_ips, ipam, guest.vmid)
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
