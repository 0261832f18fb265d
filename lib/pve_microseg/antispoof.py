"""Which addresses each NIC of a guest may send from, and the .fw edit (pure).

A NIC is filtered when it is plugged into a bridge pve-microseg manages, or
when microseg.yaml lists addresses for it (`guests: <vmid>: net<N>: [...]`).
Its addresses come from, in this order:

1. microseg.yaml `guests: <vmid>: net<N>` -- the operator's word; when
   present it is the whole list (nothing is added from 2-4);
2. otherwise the union of
   2. the SDN IPAM (pve-ipam-state.json, or the legacy priv/ipam.db), by
      VMID and MAC;
   3. a VM's cloud-init `ipconfig<N>` static `ip=`/`ip6=`;
   4. a container's static `ip=`/`ip6=` on `net<N>`;

and always the NIC's EUI-64 IPv6 link-local (without it IPv6 neighbour
discovery breaks under proxmox-firewall, which adds nothing implicitly).
Only host addresses are written, never a prefix.

`strict` (default) turns two situations into a refusal to start: a filtered
NIC with `firewall=0` (Proxmox filters nothing on it), and a NIC with no
known address besides its link-local.  Without `strict` both are warnings;
the second NIC then passes only link-local traffic.
"""

import ipaddress
from dataclasses import dataclass

from . import addresses, fwfile

# [I] reference c.6: proxmox-firewall's guest config parser knows only these models
NFT_KNOWN_MODELS = ("virtio", "e1000", "rtl8139", "vmxnet3", "veth")


@dataclass(frozen=True)
class NicPlan:
    nic: object              # guestconf.Nic
    why: str                 # why it is filtered
    addresses: tuple         # strings, as written into the set
    sources: tuple           # where the addresses came from

    @property
    def set_name(self):
        return f"ipfilter-net{self.nic.index}"


@dataclass(frozen=True)
class GuestPlan:
    vmid: int
    nics: tuple              # NicPlan
    refusals: tuple          # reasons the start must be refused (strict policy)
    warnings: tuple


def _sorted(addrs):
    ips = {ipaddress.ip_address(a) for a in addrs}
    return tuple(str(ip) for ip in sorted(ips, key=lambda ip: (ip.version, ip.is_link_local, int(ip))))


def plan(guest, cfg, ipam):
    """GuestConfig + config.Config + ipam.IpamState -> GuestPlan."""
    managed = {b.name for b in cfg.bridges}
    settings = cfg.guests.get(guest.vmid)
    strict = cfg.hookscript.strict
    nics, refusals, warnings = [], [], []
    for nic in guest.nics:
        given = settings.addresses.get(nic.index) if settings else None
        if nic.bridge in managed:
            why = f"on managed bridge {nic.bridge}"
        elif given is not None:
            why = f"listed in {settings.source.rsplit(':', 1)[0]} (guests.{guest.vmid}.{nic.key})"
        else:
            continue
        if given is not None:
            found, sources = list(given), [f"microseg.yaml guests.{guest.vmid}.{nic.key}"]
        else:
            found, sources = [], []
            from_ipam = ipam.addresses(guest.vmid, nic.mac)
            if from_ipam:
                found += from_ipam
                sources.append("IPAM")
            if nic.static:
                found += nic.static
                sources.append(nic.static_from)
        link_local = str(addresses.eui64_link_local(nic.mac))
        nics.append(NicPlan(nic=nic, why=why, addresses=_sorted(found + [link_local]),
                            sources=tuple(sources)))

        problems = []
        if not nic.firewall:
            problems.append(f"{nic.key} ({why}) has firewall=0: Proxmox applies no filter to it, "
                            f"so its ipfilter set has no effect (set firewall=1 on {nic.key})")
        if not found:
            how = ("add it to an IPAM, a static cloud-init ipconfig" if guest.type == "qemu"
                   else "set a static ip=/ip6= on the NIC, add it to an IPAM")
            problems.append(f"{nic.key} ({why}): no address is known for MAC {nic.mac} ({how}, or list "
                            f"it under guests: {guest.vmid}: {nic.key}: in microseg.yaml); only its "
                            f"link-local {link_local} would pass")
        (refusals if strict else warnings).extend(problems)
        if guest.type == "qemu" and nic.model not in NFT_KNOWN_MODELS:
            warnings.append(f"{nic.key}: NIC model {nic.model}: proxmox-firewall (nftables) is reported "
                            "not to know this model and may fail to load this guest's firewall")
    return GuestPlan(vmid=guest.vmid, nics=tuple(nics), refusals=tuple(refusals),
                     warnings=tuple(warnings))


def edit_fw(text, guest_plan, settings, guest_settings=None):
    """The new text of `<vmid>.fw` and a list of what changed (for the task log).

    Our sets are replaced in place; a set of the same name without our
    marker is the operator's and is left alone; our sets for NICs that are
    no longer filtered are removed.  `ipfilter: 1` and `enable: 1` are set;
    when the firewall was off, `policy_in` is set (unless the operator set
    one) so that turning it on does not silently drop inbound traffic.
    """
    fw = fwfile.parse(text)
    changes = []
    existing = fw.ipfilter_sets()
    wanted = {p.nic.index for p in guest_plan.nics}
    for p in guest_plan.nics:
        old = existing.get(p.nic.index)
        if old is not None and not old.managed:
            changes.append(f"{p.set_name}: kept as is (written by hand: no '{fwfile.MARKER}' comment)")
            continue
        if fw.put_ipset(p.set_name, p.addresses):
            changes.append(f"{p.set_name} = {', '.join(p.addresses)}")
    for index, section in sorted(existing.items()):
        if index not in wanted and section.managed:
            fw.remove_section(section)
            changes.append(f"ipfilter-net{index}: removed (net{index} is no longer filtered)")
    if not guest_plan.nics:
        return fw.render(), changes
    if fw.option("enable") != "1":
        fw.set_option("enable", "1")
        changes.append("enable: 1 (the guest firewall was off)")
        policy = (guest_settings.policy_in if guest_settings and guest_settings.policy_in
                  else settings.policy_in)
        if fw.option("policy_in") is None and policy:
            fw.set_option("policy_in", policy)
            changes.append(f"policy_in: {policy} (keeps inbound traffic as it was before the "
                           "firewall was turned on)")
    if fw.option("ipfilter") != "1" and fw.set_option("ipfilter", "1"):
        changes.append("ipfilter: 1")
    return fw.render(), changes
