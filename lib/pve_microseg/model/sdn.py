"""The SDN configuration pve-microseg needs: which VNets exist, their subnets."""

from dataclasses import dataclass


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

    def subnets_of(self, vnet):
        return [s for s in self.subnets if s.vnet == vnet]


EMPTY = SdnConfig(vnets=frozenset(), subnets=())
