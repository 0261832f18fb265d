"""Which addresses each NIC of a guest may send from, and the .fw edit (pure).

A guest is ours when one of its NICs is plugged into a bridge pve-microseg
manages, or when microseg.yaml lists addresses for one of its NICs
(`guests: <vmid>: net<N>: [...]`).  `ipfilter: 1` then applies to the whole
guest -- every NIC with `firewall=1` is filtered, and one without a set would
be left with its link-local address only -- so every `firewall=1` NIC of the
guest gets a set.  A NIC's addresses are nicaddr.py's: the operator's list in
microseg.yaml, else the IPAM, cloud-init and container addresses, checked,
and none that another guest of the cluster claims as firmly or more;
always with the EUI-64 link-local (without it IPv6 neighbour discovery
breaks under proxmox-firewall, which adds nothing implicitly).  Only host
addresses are written, never a prefix.  A NIC may not carry a gateway's MAC.

`strict` (default) turns every problem into a refusal to start: a filtered
NIC with `firewall=0` (Proxmox filters nothing on it), a NIC with no known
address besides its link-local, a rejected address, the datacenter firewall
off.  Without `strict` they are warnings; a rejected address is left out,
and a NIC without a known address passes only link-local traffic.
"""

from dataclasses import dataclass
from enum import Enum

from ..model.errors import FirewallFileError
from ..parse import fwfile
from . import fwstrict, nicaddr

IPFILTER_MARK = "# ipfilter: 1 below is set by pve-microseg (removed with its last set)"
_TRUE = ("1", "true", "yes", "on")          # proxmox-firewall's booleans (case-insensitive)


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
    unreadable: object = None   # fwstrict.GuestConfigProblem: proxmox-firewall cannot read the config


def _reason(nic, managed, given, settings, vmid):
    if nic.bridge in managed:
        return f"on managed bridge {nic.bridge}"
    if given is not None:
        return f"listed in {settings.source.rsplit(':', 1)[0]} (guests.{vmid}.{nic.key})"
    return None


def plan(guest, cfg, ipam, cluster_firewall_on=True, claims=None):
    """GuestConfig + config.Config + ipam.IpamState -> GuestPlan; with
    `claims` (bindings.Claims), an address another guest claims as firmly or
    more is left out (nicaddr.py)."""
    bridges, gateway_macs = cfg.bridge_map, cfg.gateway_macs
    settings = cfg.guests.get(guest.vmid)
    given_of = {n.index: (settings.addresses.get(n.index) if settings else None) for n in guest.nics}
    ours = any(_reason(n, bridges, given_of[n.index], settings, guest.vmid) for n in guest.nics)
    problems, warnings, nics = [], list(guest.warnings), []

    unreadable = (fwstrict.check_guest_config(guest.text, guest.type) or [None])[0] \
        if guest.text is not None else None
    if not ours:
        return GuestPlan(vmid=guest.vmid, nics=(), refusals=(), warnings=tuple(warnings), unreadable=unreadable)
    if not cluster_firewall_on:
        problems.append("the datacenter firewall is off (cluster.fw has no 'enable: 1'): Proxmox applies "
                        "no guest firewall, so ipfilter sets have no effect")

    for nic in guest.nics:
        given = given_of[nic.index]
        why = _reason(nic, bridges, given, settings, guest.vmid)
        if why is None:
            if not nic.firewall:
                continue        # no firewall on this NIC: ipfilter does not touch it
            why = f"firewall=1 on {nic.bridge or 'no bridge'}; ipfilter: 1 applies to every NIC of the guest"
        if nic.mac in gateway_macs:
            problems.append(f"{nic.key} has the MAC address {nic.mac} of a gateway")
        known = nicaddr.nic_addresses(guest, nic, cfg, ipam, claims)
        problems += known.problems
        found, link_local = known.found, known.link_local
        nics.append(NicPlan(nic=nic, why=why, addresses=known.all, sources=known.sources))
        if not nic.firewall:
            problems.append(f"{nic.key} ({why}) has firewall=0: Proxmox applies no filter to it, "
                            f"so its ipfilter set has no effect (set firewall=1 on {nic.key})")
        if not found:
            how = ("add it to an IPAM, a static cloud-init ipconfig" if guest.type == "qemu"
                   else "set a static ip=/ip6= on the NIC, add it to an IPAM")
            problems.append(f"{nic.key} ({why}): no address is known for MAC {nic.mac} ({how}, or list "
                            f"it under guests: {guest.vmid}: {nic.key}: in microseg.yaml); only its "
                            f"link-local {link_local} would pass")
    strict = cfg.hookscript.strict
    return GuestPlan(vmid=guest.vmid, nics=tuple(nics), refusals=tuple(problems) if strict else (),
                     warnings=tuple(warnings) + (() if strict else tuple(problems)), unreadable=unreadable)


# ------------------------------------------------------------------ proxmox-firewall and the guest config

class Nft(Enum):
    """What pre-start does about a guest config proxmox-firewall cannot read."""

    WARN = "warn"            # say so, and go on as usual (the nftables backend is off)
    LEAVE = "leave"          # say so, and leave the existing .fw file as it is (the guest is not ours)
    REFUSE = "refuse"        # a failure: hookscript.on-failure decides; the .fw file is not touched


@dataclass(frozen=True)
class NftGuard:
    action: Nft
    message: str


def nftables_on(host_fw):
    """Whether a node runs the nftables backend: `nftables: 1` in its host.fw
    [OPTIONS] (pve-firewall reads the key in any case, value 0 or 1, the last
    line wins; proxmox/pve-firewall src/PVE/Firewall.pm parse_hostfw_option and
    get_nftables_option @6f1311f349daee920c7eedcc6e53d7fc5e2cfdbf)."""
    return host_fw.option("nftables") == "1"


def nft_guard(guest_plan, nft_nodes, config_path, fw_path, fw_exists):
    """May pre-start create or change the guest's .fw (fw_path, a string)?

    proxmox-firewall reads the config of every local guest that has a .fw
    file, and one it cannot read stops the whole update: the node keeps its
    old ruleset and takes no firewall change, for any guest, until it is
    fixed.  nft_nodes: the nodes that hold or will hold the guest and run
    the nftables backend.  None: nothing to say."""
    problem = guest_plan.unreadable
    if problem is None:
        return None
    what = f"guest {guest_plan.vmid} {problem.key} ({config_path}:{problem.line}): {problem.message}"
    fw = fw_path
    if not nft_nodes:
        return NftGuard(Nft.WARN, f"{what}; proxmox-firewall, the nftables backend (off on this guest's node), "
                                  "cannot read this guest's config: on a node with nftables: 1 in its host.fw, "
                                  f"{fw} would stop every firewall update of that node")
    why = (f"{what}; {', '.join(nft_nodes)} run{'s' if len(nft_nodes) == 1 else ''} proxmox-firewall "
           "(nftables: 1 in host.fw), which cannot read this guest's config")
    if guest_plan.nics:
        return NftGuard(Nft.REFUSE, f"{why}: with {fw} in place it would stop updating the firewall of the "
                                    f"whole node; {fw} {'not changed' if fw_exists else 'not created'}")
    if fw_exists:
        return NftGuard(Nft.LEAVE, f"{why}: {fw} already stops every firewall update there (remove the file "
                                   "or change the NIC); left unchanged")
    return NftGuard(Nft.WARN, f"{why}: a {fw} for this guest would stop every firewall update there")


# ------------------------------------------------------------------ the file

class Edit(Enum):
    SET_WRITTEN = "set written"          # an ipfilter set of ours written (new or changed)
    SET_KEPT = "set kept"                # an operator's set of the same name, left alone
    SET_REMOVED = "set removed"          # a set of ours for a NIC no longer filtered
    OPTION = "option"                    # enable / ipfilter / policy_in


@dataclass(frozen=True)
class FwChange:
    """One change edit_fw made to a guest's .fw file."""

    kind: Edit
    nic: int                             # the NIC index, for the set edits
    message: str                         # for the task log

    def __str__(self):
        return self.message


def firewall_on(fw):
    """Whether either parser sees `enable` on: pve-firewall takes the last line
    of the key in any case, value 0/1; proxmox-firewall the exact key
    `enable` (spaces around ':' trimmed) with a boolean in any spelling."""
    lines = fw.option_lines("enable")
    perl = bool(lines) and lines[-1][3] == "1"
    rust = any(key == "enable" and value.lower() in _TRUE for _, _, key, value in lines)
    return perl or rust


def _canonical(fw, key):
    """True if the file holds exactly one `key: 1` line, as both parsers read it."""
    lines = fw.option_lines(key)
    return len(lines) == 1 and lines[0][0].lines[lines[0][1]].rstrip("\r\n") == f"{key}: 1"


def fw_refusal(text):
    """Why pre-start refuses to edit a guest's .fw file as it is, or None
    (`check` reports the same)."""
    if "\r" in text:
        return ("the file has CR (Windows) line endings: pve-firewall cannot read its "
                "section headers; convert it to LF (dos2unix) and start the guest again")
    return None


def edit_fw(text, guest_plan, settings, guest_settings=None):
    """The new text of `<vmid>.fw` and a list of what changed (for the task log).

    Our sets are replaced in place; a set of the same name without our
    marker is the operator's and is left alone; our sets for NICs that are
    no longer filtered are removed.  `ipfilter: 1` and `enable: 1` are made
    the one line of their key (both parsers then agree); when the firewall
    was off, `policy_in` is set (unless the operator set one) so that turning
    it on does not silently drop inbound traffic.  `ipfilter: 1` added by us
    carries a comment line and goes again with our last set.
    """
    refusal = fw_refusal(text)
    if refusal:
        raise FirewallFileError(refusal)
    fw = fwfile.parse(text)
    changes = []
    existing = fw.ipfilter_sets()
    wanted = {p.nic.index for p in guest_plan.nics}
    for p in guest_plan.nics:
        old = existing.get(p.nic.index)
        if old is not None and not old.managed:
            changes.append(FwChange(Edit.SET_KEPT, p.nic.index,
                                    f"{p.set_name}: kept as is (written by hand: no '# {fwfile.MARKER}' on its header)"))
            continue
        if fw.put_ipset(p.set_name, p.addresses):
            changes.append(FwChange(Edit.SET_WRITTEN, p.nic.index, f"{p.set_name} = {', '.join(p.addresses)}"))
    for index, section in sorted(existing.items()):
        if index not in wanted and section.managed:
            fw.remove_section(section)
            changes.append(FwChange(Edit.SET_REMOVED, index,
                                    f"ipfilter-net{index}: removed (net{index} is no longer filtered)"))
    if not guest_plan.nics:
        if not any(s.managed for s in fw.ipsets()) and _remove_mark(fw):
            fw.remove_option("ipfilter")
            changes.append(FwChange(Edit.OPTION, None, "ipfilter: removed (pve-microseg had set it)"))
        return fw.render(), changes
    if not firewall_on(fw):
        fw.set_option("enable", "1")
        changes.append(FwChange(Edit.OPTION, None, "enable: 1 (the guest firewall was off)"))
        policy = (guest_settings.policy_in if guest_settings and guest_settings.policy_in
                  else settings.policy_in)
        if not fw.option_lines("policy_in") and policy:
            fw.set_option("policy_in", policy)
            changes.append(FwChange(Edit.OPTION, None, f"policy_in: {policy} (keeps inbound traffic as it "
                                    "was before the firewall was turned on)"))
    elif not _canonical(fw, "enable"):
        fw.set_option("enable", "1")
        changes.append(FwChange(Edit.OPTION, None, "enable: 1 (rewritten so that both firewall backends read it)"))
    if not _canonical(fw, "ipfilter"):
        new = fw.option("ipfilter") is None
        fw.set_option("ipfilter", "1")
        if new:
            section, i, _, _ = fw.option_lines("ipfilter")[0]
            section.lines.insert(i, IPFILTER_MARK + "\n")
        changes.append(FwChange(Edit.OPTION, None, "ipfilter: 1"))
    return fw.render(), changes


def _remove_mark(fw):
    for section in fw.sections:
        if section.kind == "options":
            for i, line in enumerate(section.lines):
                if line.rstrip("\r\n") == IPFILTER_MARK:
                    del section.lines[i]
                    return True
    return False
