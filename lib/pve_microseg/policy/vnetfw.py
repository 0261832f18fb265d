"""The VNet firewall pve-microseg sets up for a VNet, and what it checks first (pure).

`vnet enable <vnet>` makes the VNet's Layer 3 firewall (nftables backend,
/etc/pve/sdn/firewall/<vnet>.fw) drop forwarded traffic by default
(`policy_forward: DROP`) and adds FORWARD rules, each tagged with a
comment starting `pve-microseg:` so that running it again adds nothing and
`vnet disable` removes exactly these:

    gateway-to-guests  ACCEPT -source +sdn/<vnet>-gateway -dest +sdn/<vnet>-all
    guests-to-gateway  ACCEPT -source +sdn/<vnet>-all -dest +sdn/<vnet>-gateway

and optional presets for what guests may reach beyond the gateway's own
addresses (`--allow`): icmp, dns, dhcp, http, https, web-proxy (tcp 3128,
8080 on the gateway).  The `+sdn/...` sets are built by Proxmox from the
running SDN configuration (they exist only after an SDN apply).

Prerequisites: the datacenter firewall must be on and the VNet firewall works
only with the nftables backend, `nftables: 1` in each node's host.fw
(FirewallConfig::is_enabled and bridge_firewall_config in proxmox/proxmox-firewall
proxmox-firewall/src/config.rs@a75265939e3aa152a92961d06c26e611c731da67;
pve-firewall never reads the file outside its API).  Turning the datacenter
firewall on without a `management` IP set locks administrators out: the
host's inbound policy becomes DROP and only the management set reaches SSH
and the web interface (enable_host_firewall in proxmox/pve-firewall
src/PVE/Firewall.pm@6f1311f349daee920c7eedcc6e53d7fc5e2cfdbf).
"""

from dataclasses import dataclass
from enum import Enum

TAG = "pve-microseg:"


@dataclass(frozen=True)
class Rule:
    name: str                 # our id, the comment after TAG
    params: tuple             # ((api parameter, value), ...) for POST .../firewall/rules

    @property
    def comment(self):
        return f"{TAG} {self.name}"

    def api_params(self):
        return dict(self.params, type="forward", action="ACCEPT", enable=1, comment=self.comment)


def _r(name, **kw):
    return Rule(name, tuple((k.replace("icmp_type", "icmp-type"), v) for k, v in kw.items()))


def base_rules(vnet):
    return [_r("gateway-to-guests", source=f"+sdn/{vnet}-gateway", dest=f"+sdn/{vnet}-all"),
            _r("guests-to-gateway", source=f"+sdn/{vnet}-all", dest=f"+sdn/{vnet}-gateway")]


def preset_rules(vnet, name):
    src = f"+sdn/{vnet}-all"
    gw = f"+sdn/{vnet}-gateway"
    presets = {
        "icmp": [_r("icmp", source=src, proto="icmp"), _r("icmpv6", source=src, proto="ipv6-icmp")],
        "dns": [_r("dns-udp", source=src, proto="udp", dport="53"),
                _r("dns-tcp", source=src, proto="tcp", dport="53")],
        "dhcp": [_r("dhcp", proto="udp", sport="68", dport="67"),
                 _r("dhcp-reply", source=gw, proto="udp", sport="67", dport="68")],
        "http": [_r("http", source=src, proto="tcp", dport="80")],
        "https": [_r("https", source=src, proto="tcp", dport="443")],
        "web-proxy": [_r("web-proxy", source=src, dest=gw, proto="tcp", dport="3128,8080")],
    }
    return presets[name]


PRESETS = ("icmp", "dns", "dhcp", "http", "https", "web-proxy")


def desired(vnet, allow=()):
    rules = base_rules(vnet)
    for name in dict.fromkeys(allow):               # a preset named twice is added once
        rules += preset_rules(vnet, name)
    return rules


def ours(rules):
    """{our rule name: [pos, ...]} among the rules the API lists."""
    out = {}
    for r in rules or ():
        comment = (r.get("comment") or "").strip()
        if comment.startswith(TAG):
            out.setdefault(comment[len(TAG):].strip(), []).append(int(r["pos"]))
    return out


class Need(Enum):
    """What stands in the way of a working VNet firewall, or what will be done."""

    DATACENTER_OFF = "datacenter-firewall-off"
    LOCKOUT = "lockout-risk"
    NFTABLES_OFF = "nftables-backend-off"
    NOT_APPLIED = "vnet-not-applied"
    TURN_ON_DATACENTER = "datacenter-firewall-will-be-turned-on"


@dataclass(frozen=True)
class Finding:
    need: Need
    what: str
    how: str = ""             # the fix, for problems


@dataclass(frozen=True)
class Prerequisites:
    problems: tuple           # Finding -- nothing may change while there is one
    notes: tuple = ()         # Finding

    def without(self, need):
        return Prerequisites(tuple(p for p in self.problems if p.need is not need), self.notes)

    def notes_of(self, need):
        return any(n.need is need for n in self.notes)


def check(cluster_options, management_set, host_nftables, vnet_in_running_config, enable_datacenter=False,
          lockout_confirmed=False):
    """What stands in the way of a working VNet firewall.

    cluster_options: {key: value} of cluster.fw; management_set: entries of
    its `management` ipset (None: no such set); host_nftables: {node: bool};
    vnet_in_running_config: the +sdn sets exist (SDN applied)."""
    problems, notes = [], []
    if str(cluster_options.get("enable", "0")) != "1":
        if not enable_datacenter:
            problems.append(Finding(Need.DATACENTER_OFF, "the datacenter firewall is off, so no VNet firewall applies",
                                    "add --enable-datacenter-firewall to turn it on"))
        elif not management_set and not lockout_confirmed:
            problems.append(Finding(Need.LOCKOUT,
                                    "turning the datacenter firewall on without a 'management' IP set "
                                    "locks you out: every node's inbound policy becomes DROP",
                                    "create it first (pvesh create /cluster/firewall/ipset --name management; "
                                    "pvesh create /cluster/firewall/ipset/management --cidr <your admin network>), "
                                    "or add --i-have-console-access; to recover from a lockout run "
                                    "'pve-firewall stop' at a node's console"))
        else:
            notes.append(Finding(Need.TURN_ON_DATACENTER, "the datacenter firewall will be turned on"))
    off = sorted(n for n, on in host_nftables.items() if not on)
    if off:
        problems.append(Finding(Need.NFTABLES_OFF,
                                f"the VNet firewall works only with the nftables backend; not enabled on: "
                                f"{', '.join(off)}",
                                "on each: pvesh set /nodes/<node>/firewall/options --nftables 1"))
    if not vnet_in_running_config:
        problems.append(Finding(Need.NOT_APPLIED,
                                "the VNet is not in the running SDN configuration, so the +sdn/... sets its "
                                "rules use do not exist yet", "add --apply to run the SDN apply first"))
    return Prerequisites(tuple(problems), tuple(notes))
