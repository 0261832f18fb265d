"""The SDN configuration pve-microseg needs: which VNets exist, in which
zone, and their subnets."""

from dataclasses import dataclass, field

# Zone types where the node itself is the VNets' gateway: the subnet gateway
# address sits on the VNet bridge of every node and the node routes (Simple:
# `address <gw>/<len>`, `ip-forward on`; EVPN: the same, plus the zone's
# anycast `hwaddress`).  VLAN, QinQ and VXLAN zones leave routing to an
# external router.  (pve-network src/PVE/Network/SDN/Zones/*Plugin.pm)
ROUTED_ZONE_TYPES = ("simple", "evpn")


@dataclass(frozen=True)
class Zone:
    id: str
    type: str                  # simple, vlan, qinq, vxlan, evpn, faucet...
    mac: str = None            # EVPN: the anycast gateway MAC every node's VNet bridges carry

    @property
    def routed(self):
        """The node is the gateway of this zone's VNets."""
        return self.type in ROUTED_ZONE_TYPES


@dataclass(frozen=True)
class Subnet:
    id: str
    vnet: str
    network: object            # ipaddress.IPv4Network | IPv6Network
    gateway: object = None     # ipaddress.IPv4Address | IPv6Address | None


@dataclass(frozen=True)
class SdnConfig:
    vnets: frozenset
    subnets: tuple
    source: str = ""
    zones: dict = field(default_factory=dict)         # zone id -> Zone
    vnet_zones: dict = field(default_factory=dict)    # vnet -> zone id

    def subnets_of(self, vnet):
        return [s for s in self.subnets if s.vnet == vnet]

    def zone_of(self, vnet):
        """The Zone of a VNet, None when unknown."""
        return self.zones.get(self.vnet_zones.get(vnet))


EMPTY = SdnConfig(vnets=frozenset(), subnets=())
