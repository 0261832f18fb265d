"""Guest addresses recorded in Proxmox's own IPAM (see parse/ipam.py)."""

import ipaddress
from dataclasses import dataclass


def canonical_address(ip):
    """An address (str or ipaddress object) in its one spelling, as
    ipaddress writes it (IPv6: lower case, no leading zeros, `::` where it
    saves most); text that is no address, stripped, as it is.  An IPv4
    address has only one spelling ipaddress accepts, so only IPv6 is parsed
    (the hookscript looks up every address of the IPAM's)."""
    text = str(ip).strip()
    if ":" not in text:
        return text
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return text


@dataclass(frozen=True)
class IpamState:
    path: str
    by_guest: dict          # (vmid: str, mac: lower str) -> tuple of address strings (canonical)
    owners: dict = None     # canonical address -> vmid (str, canonical when a valid VMID), every guest entry

    def addresses(self, vmid, mac):
        return self.by_guest.get((str(vmid), mac.lower()), ())

    def owner(self, ip):
        """The VMID (str) IPAM assigns this address to, or None; `ip` in any spelling."""
        return (self.owners or {}).get(canonical_address(ip))


EMPTY = IpamState(path=None, by_guest={}, owners={})
