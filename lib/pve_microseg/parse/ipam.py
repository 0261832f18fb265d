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

from ..model.errors import ConfigError
from ..model.ipam import IpamState
from . import addresses


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
