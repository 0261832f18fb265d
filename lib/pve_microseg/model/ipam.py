"""Guest addresses recorded in Proxmox's own IPAM (see parse/ipam.py)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class IpamState:
    path: str
    by_guest: dict          # (vmid: str, mac: lower str) -> tuple of address strings
    owners: dict = None     # address as written -> vmid (str), every guest entry

    def addresses(self, vmid, mac):
        return self.by_guest.get((str(vmid), mac.lower()), ())

    def owner(self, ip):
        """The VMID (str) IPAM assigns this address to, or None."""
        return (self.owners or {}).get(str(ip))


EMPTY = IpamState(path=None, by_guest={}, owners={})
