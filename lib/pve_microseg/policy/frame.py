"""One Ethernet frame as the rules see it (pure): the fields our nftables
rules match on, and nothing else (policy/explain.py evaluates them).

A field a frame does not carry (the IPv4 source of an ARP frame, the UDP
port of an ICMP packet) is ABSENT: a rule matching on it never matches,
whatever its operator, as in the kernel (nft adds a dependency on the
protocol to every such match).
"""

import ipaddress
from dataclasses import dataclass

ABSENT = None

ETH_IP, ETH_ARP, ETH_IP6, ETH_8021Q, ETH_8021AD = 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8
IPPROTO = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "icmpv6": 58}
BROADCAST = "ff:ff:ff:ff:ff:ff"

ICMP6 = {"echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
         "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133,
         "nd-router-advert": 134, "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137,
         "mld2-listener-report": 143}
ICMP4 = {"echo-reply": 0, "destination-unreachable": 3, "echo-request": 8}
ARP_OP = {"request": 1, "reply": 2}


@dataclass(frozen=True)
class Frame:
    src_mac: str
    dst_mac: str
    ethertype: int = ETH_IP             # the outer ethertype (0x8100 for a VLAN-tagged frame)
    src_ip: object = None               # ipaddress objects (IPv4 or IPv6 frames)
    dst_ip: object = None
    proto: int = None                   # IP protocol / next header (IPPROTO)
    sport: int = None                   # UDP/TCP
    dport: int = None
    icmp_type: int = None               # ICMP or ICMPv6 type
    nd_target: object = None            # IPv6Address: target of a neighbour solicitation/advertisement
    arp_op: int = None
    arp_sha: str = None                 # ARP sender/target hardware and protocol addresses
    arp_spa: object = None
    arp_tha: str = None
    arp_tpa: object = None

    def __post_init__(self):
        for name in ("src_mac", "dst_mac", "arp_sha", "arp_tha"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)).lower())
        for name in ("src_ip", "dst_ip", "arp_spa", "arp_tpa", "nd_target"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, ipaddress.ip_address(str(getattr(self, name))))

    @property
    def family(self):
        return {ETH_IP: "ip", ETH_IP6: "ip6", ETH_ARP: "arp"}.get(self.ethertype)

    def field(self, protocol, name):
        """The value of `protocol field` (nft's names), or ABSENT."""
        fam = self.family
        if protocol == "ether":
            return {"saddr": self.src_mac, "daddr": self.dst_mac, "type": self.ethertype}.get(name, ABSENT)
        if protocol in ("ip", "ip6"):
            if fam != protocol:
                return ABSENT
            return {"saddr": self.src_ip, "daddr": self.dst_ip, "protocol": self.proto,
                    "nexthdr": self.proto}.get(name, ABSENT)
        if protocol == "arp":
            if fam != "arp":
                return ABSENT
            return {"operation": self.arp_op, "saddr ether": self.arp_sha, "saddr ip": self.arp_spa,
                    "daddr ether": self.arp_tha, "daddr ip": self.arp_tpa}.get(name, ABSENT)
        if protocol in ("udp", "tcp"):
            if fam not in ("ip", "ip6") or self.proto != IPPROTO[protocol]:
                return ABSENT
            return {"sport": self.sport, "dport": self.dport}.get(name, ABSENT)
        if protocol == "icmp":
            return self.icmp_type if fam == "ip" and self.proto == IPPROTO["icmp"] and name == "type" else ABSENT
        if protocol == "icmpv6":
            if fam != "ip6" or self.proto != IPPROTO["icmpv6"]:
                return ABSENT
            if name == "type":
                return self.icmp_type
            if name == "taddr" and self.icmp_type in (ICMP6["nd-neighbor-solicit"], ICMP6["nd-neighbor-advert"]):
                return self.nd_target
            return ABSENT
        return ABSENT

    def to_json(self):
        out = {"src-mac": self.src_mac, "dst-mac": self.dst_mac, "ethertype": f"0x{self.ethertype:04x}"}
        for key, value in (("src-ip", self.src_ip), ("dst-ip", self.dst_ip), ("proto", self.proto),
                           ("sport", self.sport), ("dport", self.dport), ("icmp-type", self.icmp_type),
                           ("nd-target", self.nd_target), ("arp-op", self.arp_op), ("arp-sha", self.arp_sha),
                           ("arp-spa", self.arp_spa), ("arp-tha", self.arp_tha), ("arp-tpa", self.arp_tpa)):
            if value is not None:
                out[key] = value if isinstance(value, int) else str(value)
        return out

    def summary(self):
        """One line: what the frame is."""
        fam = self.family
        if fam == "arp":
            op = {1: "request", 2: "reply"}.get(self.arp_op, self.arp_op)
            return (f"ARP {op} {self.arp_sha} {self.arp_spa} -> {self.arp_tha} {self.arp_tpa} "
                    f"({self.src_mac} -> {self.dst_mac})")
        if fam in ("ip", "ip6"):
            name = {v: k for k, v in IPPROTO.items()}.get(self.proto, str(self.proto))
            what = name
            if self.sport is not None:
                what += f" {self.sport} -> {self.dport}"
            if self.icmp_type is not None:
                types = ICMP6 if fam == "ip6" else ICMP4
                what += " " + {v: k for k, v in types.items()}.get(self.icmp_type, str(self.icmp_type))
            if self.nd_target is not None:
                what += f" target {self.nd_target}"
            return f"{'IPv4' if fam == 'ip' else 'IPv6'} {self.src_ip} -> {self.dst_ip} {what} " \
                   f"({self.src_mac} -> {self.dst_mac})"
        return f"ethertype 0x{self.ethertype:04x} ({self.src_mac} -> {self.dst_mac})"
