"""A managed bridge and its gateway.

Plain frozen dataclasses, validated on the way in (parse/, policy/resolve.py),
so the rule generation downstream never sees a malformed address.
"""

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gateway:
    """The router(s) of one bridge: every address a guest may talk to.

    `macs` holds several entries for VRRP/anycast routers.  `ipv6` includes
    the router's link-local address(es): guests resolve their default route's
    next hop (usually fe80::…) with ND.
    """

    macs: tuple = ()
    ipv4: tuple = ()
    ipv6: tuple = ()

    @property
    def ips(self):
        return self.ipv4 + self.ipv6


@dataclass(frozen=True)
class ManagedBridge:
    """A Linux bridge (SDN VNet or plain bridge) with private-VLAN semantics."""

    name: str
    gateway: Gateway
    source: str = field(default="", compare=False)  # "file:line", for messages
    vnet: bool = False          # an SDN VNet (gateway IPs may come from its subnets)
    subnets: tuple = field(default=())  # ip_network objects the gateway must lie in
    isolate_ports: bool = False  # plain bridge: the hookscript isolates guest ports at start

    def to_json(self):
        return {
            "bridge": self.name,
            "vnet": self.vnet,
            "source": self.source,
            "gateway-mac": list(self.gateway.macs),
            "gateway-ip": [str(a) for a in self.gateway.ips],
            "subnets": [str(n) for n in self.subnets],
            "isolate-ports": self.isolate_ports,
        }

    @classmethod
    def from_json(cls, data):
        ips = [ipaddress.ip_address(a) for a in data["gateway-ip"]]
        return cls(
            name=data["bridge"],
            vnet=bool(data.get("vnet")),
            source=data.get("source", ""),
            subnets=tuple(ipaddress.ip_network(n) for n in data.get("subnets", [])),
            isolate_ports=bool(data.get("isolate-ports")),
            gateway=Gateway(
                macs=tuple(data["gateway-mac"]),
                ipv4=tuple(a for a in ips if a.version == 4),
                ipv6=tuple(a for a in ips if a.version == 6),
            ),
        )
