"""The article's `/etc/pve/L2-microsegmentation.conf` (pure).

`BRIDGE;GATEWAY_IP;GATEWAY_MAC` per line, `#` comments.  Lines for the same
bridge add up (several gateways).  A bridge also named in microseg.yaml is
taken from there only (policy/resolve.py, combine).
"""

from ..model.config import BridgeSpec
from ..model.errors import ConfigError
from . import addresses
from .names import check_ifname


def parse_legacy(text, path="L2-microsegmentation.conf"):
    """Text -> [BridgeSpec]; ConfigError naming the line and field."""
    specs = {}
    # lines end at LF only, as the article's `read` loop sees them: str.splitlines
    # would also end one at CR, VT, FF, \x1c-\x1e, \x85, U+2028 and name a wrong line
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3:
            raise ConfigError(path, lineno, None,
                              f"expected BRIDGE;GATEWAY_IP;GATEWAY_MAC, got {line!r}")
        bridge, ip, mac = parts
        check_ifname(bridge, path, lineno, "BRIDGE")
        try:
            ip = addresses.parse_ip(ip)
        except ValueError as e:
            raise ConfigError(path, lineno, "GATEWAY_IP", str(e)) from None
        try:
            mac = addresses.parse_mac(mac)
        except ValueError as e:
            raise ConfigError(path, lineno, "GATEWAY_MAC", str(e)) from None
        spec = specs.setdefault(bridge, BridgeSpec(name=bridge, path=str(path), line=lineno,
                                                   mac_field="GATEWAY_MAC", ip_field="GATEWAY_IP"))
        spec.ips.append((ip, lineno))
        spec.macs.append((mac, lineno))
        spec.ips_given = True
    return list(specs.values())
