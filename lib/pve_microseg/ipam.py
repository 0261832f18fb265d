"""Guest addresses recorded in Proxmox's own IPAM (pve-network's "pve" plugin).

The state lives in `/etc/pve/sdn/pve-ipam-state.json` (libpve-network-perl
>= 0.9.9) or, on older nodes, `/etc/pve/priv/ipam.db`; both have one shape:

    {"zones": {"<zone>": {"subnets": {"<cidr>": {"ips": {
        "<ip>": {"vmid": "101", "mac": "BC:24:11:11:22:33", "hostname": "web1"},
        "<ip>": {"gateway": 1}}}}}}}

Only zones with both an IPAM and DHCP (Simple zones) hold guest addresses;
VLAN zones hold gateways only.  `vmid` is a string; entries without a MAC
cannot be tied to a NIC and are ignored.
"""

import json
from dataclasses import dataclass

from . import addresses
from .errors import ConfigError


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


def parse(text, path="pve-ipam-state.json", vmid=None):
    """IPAM JSON -> IpamState; with `vmid`, only that guest's entries are
    validated (the guest hookscript's cost must not grow with the cluster)."""
    wanted = None if vmid is None else str(vmid)
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, getattr(e, "lineno", None), None, f"not valid JSON: {e.msg}") from None
    found, owners = {}, {}
    try:
        zones = data.get("zones") if isinstance(data, dict) else None
        for zone in (zones or {}).values():
            for subnet in ((zone or {}).get("subnets") or {}).values():
                for ip, entry in ((subnet or {}).get("ips") or {}).items():
                    if not isinstance(entry, dict) or entry.get("vmid") in (None, ""):
                        continue
                    vmid = owners[ip] = str(entry["vmid"])
                    if not entry.get("mac") or (wanted is not None and vmid != wanted):
                        continue
                    try:
                        mac = addresses.parse_mac(entry["mac"])
                        ip = str(addresses.parse_ip(ip))
                    except ValueError:
                        continue
                    if ip not in found.setdefault((vmid, mac), []):
                        found[(vmid, mac)].append(ip)
    except (AttributeError, TypeError) as e:
        raise ConfigError(path, None, "zones", f"unexpected structure ({e}); expected "
                          '{"zones": {<zone>: {"subnets": {<cidr>: {"ips": {<ip>: {...}}}}}}}') from None
    return IpamState(path=str(path), by_guest={k: tuple(v) for k, v in found.items()}, owners=owners)


def load(paths, vmid=None):
    """The first IPAM state file that exists (current location first), or an empty state."""
    for path in (paths.ipam_state, paths.legacy_ipam_state):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(path, None, None, f"cannot read: {e.strerror}") from None
        return parse(text, path, vmid)
    return IpamState(path=None, by_guest={}, owners={})
