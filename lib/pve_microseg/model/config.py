"""microseg.yaml and the legacy file, as read (Document, BridgeSpec) and as
resolved against SDN (Config).

Two cluster-wide files on pmxcfs name the managed bridges:

* `/etc/pve/microseg.yaml` -- ours (parse/microseg_yaml.py):

      bridges:
        web:                                  # an SDN VNet or a Linux bridge
          gateway-mac: 00:00:5e:00:01:64      # one, or a list (VRRP/anycast)
          gateway-ip: [10.100.0.1, 2001:db8:100::1]   # VNets: default = subnet gateways

* `/etc/pve/L2-microsegmentation.conf` -- the legacy file of the article's
  scripts, `BRIDGE;GATEWAY_IP;GATEWAY_MAC` per line (parse/legacy.py).

policy/resolve.py turns the BridgeSpecs of both into ManagedBridges.
"""

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HookscriptSettings:
    """`hookscript:` in microseg.yaml: how the guest hookscript behaves."""

    on_failure: str = "fail-closed"     # or "fail-open"
    strict: bool = True                 # refuse NICs without firewall=1 or without known addresses
    chain: str = None                   # an operator's hookscript to run after ours (volume id or path)
    policy_in: str = "ACCEPT"           # written when we turn a guest's firewall on (None: leave DROP)


@dataclass(frozen=True)
class GuestSettings:
    """`guests: <vmid>:` in microseg.yaml: per-guest addresses and overrides."""

    vmid: int
    source: str = ""                    # "file:line"
    addresses: dict = field(default_factory=dict)   # NIC index -> tuple of address strings
    chain: str = None
    policy_in: str = None
    port_security: str = None           # lowers its bridges' port security for this guest


@dataclass
class BridgeSpec:
    """One bridge as written in a file, before SDN defaults are applied."""

    name: str
    path: str
    line: int
    macs: list = field(default_factory=list)        # [(mac, line)]
    ips: list = field(default_factory=list)         # [(ip, line)]
    subnets: list = field(default_factory=list)     # [(network, line)]
    ips_given: bool = False
    isolate_ports: bool = False
    port_security: str = None
    intra_vnet_routing: str = None
    vnet_firewall_before: dict = None   # written by `vnet enable`, read by `vnet disable`
    mac_field: str = "gateway-mac"      # how the file calls the fields, for messages
    ip_field: str = "gateway-ip"


@dataclass(frozen=True)
class Document:
    """microseg.yaml, parsed and validated but not yet resolved against SDN."""

    bridges: list = field(default_factory=list)             # BridgeSpec
    hookscript: HookscriptSettings = HookscriptSettings()
    guests: dict = field(default_factory=dict)              # vmid -> GuestSettings
    port_security: str = None                               # the default of every bridge
    intra_vnet_routing: str = None                          # the default of every bridge
    log: bool = False                                       # `log: on`: drops logged to the kernel log

    def bridge(self, name):
        return next((b for b in self.bridges if b.name == name), None)


@dataclass(frozen=True)
class Config:
    """Every managed bridge, resolved, plus the hookscript and guest settings."""

    bridges: tuple          # ManagedBridge, sorted by name
    warnings: tuple = ()
    hookscript: HookscriptSettings = HookscriptSettings()
    guests: dict = field(default_factory=dict)              # vmid -> GuestSettings
    log: bool = False                                       # `log: on`: drops logged to the kernel log

    def bridge(self, name):
        return self.bridge_map.get(name)

    @property
    def names(self):
        return frozenset(b.name for b in self.bridges)

    # computed once per configuration: checked for every guest (status reads thousands)
    @functools.cached_property
    def bridge_map(self):
        return {b.name: b for b in self.bridges}

    @functools.cached_property
    def gateway_ips(self):
        return frozenset(ip for b in self.bridges for ip in b.gateway.ips)

    @functools.cached_property
    def gateway_macs(self):
        return frozenset(m for b in self.bridges for m in b.gateway.macs)
