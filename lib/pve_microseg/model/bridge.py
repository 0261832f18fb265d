"""A managed bridge and its gateway.

Plain frozen dataclasses, validated on the way in (parse/, policy/resolve.py),
so the rule generation downstream never sees a malformed address.
"""

import ipaddress
from dataclasses import dataclass, field


# Port security, strictest first: a guest port's source MAC must be its NIC's
# and its source addresses the NIC's known ones (mac+ip), only the MAC is
# bound (mac), or nothing is checked (off).
PORT_SECURITY = ("mac+ip", "mac", "off")
DEFAULT_PORT_SECURITY = "mac+ip"


# What a guest may do with a packet for another address of its own bridge's
# subnets sent to the gateway, which would route it back into the bridge
# (to another guest): drop it at the bridge (the default), or allow it and
# let the router's policy decide.
INTRA_VNET_ROUTING = ("drop", "allow")
DEFAULT_INTRA_VNET_ROUTING = "drop"


def weakest(*modes):
    """The least strict of some port-security modes (None: not set)."""
    return max((m for m in modes if m), key=PORT_SECURITY.index, default=DEFAULT_PORT_SECURITY)


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
    port_security: str = "mac+ip"   # what the bridge's guest ports are bound to (PORT_SECURITY)
    intra_vnet_routing: str = DEFAULT_INTRA_VNET_ROUTING   # INTRA_VNET_ROUTING
    zone: str = None            # SDN zone id of a VNet
    zone_type: str = None       # simple, vlan, qinq, vxlan, evpn...
    node_is_gateway: bool = False   # Simple/EVPN zone: the gateway address is on this bridge

    @property
    def routed_subnets(self):
        """The subnets whose other addresses a guest may not reach through the
        gateway (empty when intra-VNet routing is allowed)."""
        return self.subnets if self.intra_vnet_routing == "drop" else ()

    def to_json(self):
        return {
            "bridge": self.name,
            "vnet": self.vnet,
            "source": self.source,
            "gateway-mac": list(self.gateway.macs),
            "gateway-ip": [str(a) for a in self.gateway.ips],
            "subnets": [str(n) for n in self.subnets],
            "isolate-ports": self.isolate_ports,
            "port-security": self.port_security,
            "intra-vnet-routing": self.intra_vnet_routing,
            "zone": self.zone,
            "zone-type": self.zone_type,
            "node-is-gateway": self.node_is_gateway,
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
            port_security=data.get("port-security", DEFAULT_PORT_SECURITY),
            intra_vnet_routing=data.get("intra-vnet-routing", DEFAULT_INTRA_VNET_ROUTING),
            zone=data.get("zone"),
            zone_type=data.get("zone-type"),
            node_is_gateway=bool(data.get("node-is-gateway")),
            gateway=Gateway(
                macs=tuple(data["gateway-mac"]),
                ipv4=tuple(a for a in ips if a.version == 4),
                ipv6=tuple(a for a in ips if a.version == 6),
            ),
        )
