"""Port security: what one guest port on a managed bridge may send."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PortBinding:
    """The binding of one bridge port of a guest NIC.

    `mac`, `ipv4`, `ipv6` are what the port may use as source: the NIC's
    MAC and its known host addresses.  None means any (port security `mac`
    leaves the addresses open, `off` the MAC too).  An empty tuple means
    none: with `mac+ip` and no known IPv4 address, IPv4 passes only as a
    DHCP client's request.
    """

    port: str                 # tap<vmid>i<n>, veth<vmid>i<n> or fwpr<vmid>p<n>
    vmid: int
    nic: str                  # net<n>
    bridge: str
    mode: str                 # mac+ip, mac or off (model.bridge.PORT_SECURITY)
    mac: str = None
    ipv4: tuple = None
    ipv6: tuple = None
    sources: tuple = ()       # where the addresses came from

    def to_json(self):
        return {"port": self.port, "vmid": self.vmid, "nic": self.nic, "bridge": self.bridge,
                "port-security": self.mode, "mac": self.mac,
                "ipv4": None if self.ipv4 is None else list(self.ipv4),
                "ipv6": None if self.ipv6 is None else list(self.ipv6), "sources": list(self.sources)}

    @classmethod
    def from_json(cls, data):
        return cls(port=data["port"], vmid=data["vmid"], nic=data["nic"], bridge=data["bridge"],
                   mode=data["port-security"], mac=data["mac"],
                   ipv4=None if data["ipv4"] is None else tuple(data["ipv4"]),
                   ipv6=None if data["ipv6"] is None else tuple(data["ipv6"]), sources=tuple(data["sources"]))
