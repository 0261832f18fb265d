"""Ethernet frames built with struct: just enough for the dataplane checks.

Every builder takes a `nonce` (see new_nonce) and hides it where the receiver's
kernel ignores it -- ARP padding, a UDP payload, a DHCP private option, an
ICMPv6 ND option of type 253 (RFC 4727 experimental) -- so a sniffer at the
receiver can tell our frame from background traffic: `nonce in frame`.
"""

import ipaddress
import os
import struct

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_LOCAL_EXP = 0x88B5          # IEEE 802 local experimental ethertype 1

BROADCAST = "ff:ff:ff:ff:ff:ff"
IPPROTO_ICMP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 17, 58

ARP_REQUEST, ARP_REPLY = 1, 2
ICMP6_RS, ICMP6_RA, ICMP6_NS, ICMP6_NA = 133, 134, 135, 136
ND_OPT_SLLA, ND_OPT_TLLA, ND_OPT_NONCE = 1, 2, 253
DHCPDISCOVER, DHCPOFFER = 1, 2

MAGIC = b"PVMS"


def new_nonce():
    """12 bytes no other frame on the wire contains."""
    return MAGIC + os.urandom(8)


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(raw):
    return ":".join(f"{b:02x}" for b in raw)


def ip_bytes(addr):
    return ipaddress.ip_address(addr).packed


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def solicited_node(addr):
    """ff02::1:ffXX:XXXX for an IPv6 address, and its 33:33:ff:XX:XX:XX MAC."""
    low = ip_bytes(addr)[-3:]
    group = ipaddress.IPv6Address(bytes.fromhex("ff02" + "00" * 9 + "01ff") + low)
    return str(group), "33:33:ff:" + mac_str(low)


def multicast_mac6(group):
    return "33:33:" + mac_str(ip_bytes(group)[-4:])


# ---- layer 2 --------------------------------------------------------------

def ethernet(dst, src, ethertype, payload):
    frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def arp(op, src_mac, sender_mac, sender_ip, target_mac, target_ip, nonce, dst=BROADCAST):
    """ARP over Ethernet; the nonce rides in the padding after the ARP body."""
    body = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, op)
    body += mac_bytes(sender_mac) + ip_bytes(sender_ip) + mac_bytes(target_mac) + ip_bytes(target_ip)
    return ethernet(dst, src_mac, ETH_P_ARP, body + nonce)


def arp_request(mac, ip, target_ip, nonce):
    return arp(ARP_REQUEST, mac, mac, ip, "00:00:00:00:00:00", target_ip, nonce)


def gratuitous_arp(mac, ip, nonce):
    """Unsolicited ARP announcement: who-has IP tell IP, broadcast."""
    return arp(ARP_REQUEST, mac, mac, ip, "00:00:00:00:00:00", ip, nonce)


def arp_reply(mac, ip, target_mac, target_ip, nonce):
    return arp(ARP_REPLY, mac, mac, ip, target_mac, target_ip, nonce, dst=target_mac)


def raw_ethertype(dst, src, nonce, ethertype=ETH_P_LOCAL_EXP):
    return ethernet(dst, src, ethertype, nonce)


# ---- IPv4 -----------------------------------------------------------------

def ipv4(src, dst, proto, payload, ttl=64):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), int.from_bytes(os.urandom(2), "big"),
                         0, ttl, proto, 0, ip_bytes(src), ip_bytes(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def udp(src, dst, sport, dport, payload):
    """A UDP datagram with its IPv4 or IPv6 pseudo-header checksum."""
    length = 8 + len(payload)
    six = ipaddress.ip_address(src).version == 6
    pseudo = ip_bytes(src) + ip_bytes(dst)
    pseudo += struct.pack("!IxxxB", length, IPPROTO_UDP) if six else struct.pack("!xBH", IPPROTO_UDP, length)
    csum = checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + payload


def udp4_frame(dst_mac, src_mac, src, dst, sport, dport, payload):
    return ethernet(dst_mac, src_mac, ETH_P_IP, ipv4(src, dst, IPPROTO_UDP, udp(src, dst, sport, dport, payload)))


def dhcp(op_type, chaddr, nonce, xid, yiaddr="0.0.0.0", server=None):
    """A BOOTP/DHCP message; the nonce is in private option 224."""
    bootp_op = 1 if op_type == DHCPDISCOVER else 2
    msg = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", bootp_op, 1, 6, 0, xid, 0, 0x8000,
                      bytes(4), ip_bytes(yiaddr), ip_bytes(server or "0.0.0.0"), bytes(4),
                      mac_bytes(chaddr), b"", b"")
    msg += b"\x63\x82\x53\x63" + bytes([53, 1, op_type])
    if server:
        msg += bytes([54, 4]) + ip_bytes(server) + bytes([1, 4, 255, 255, 255, 0, 3, 4]) + ip_bytes(server)
        msg += bytes([51, 4]) + struct.pack("!I", 3600)
    msg += bytes([224, len(nonce)]) + nonce + b"\xff"
    return msg


def dhcp_discover(mac, nonce, xid=0x1234):
    """DHCPDISCOVER 0.0.0.0:68 -> 255.255.255.255:67, Ethernet broadcast."""
    payload = dhcp(DHCPDISCOVER, mac, nonce, xid)
    return udp4_frame(BROADCAST, mac, "0.0.0.0", "255.255.255.255", 68, 67, payload)


def dhcp_offer(server_mac, server_ip, client_mac, offered_ip, nonce, xid=0x1234):
    """DHCPOFFER server:67 -> 255.255.255.255:68, Ethernet broadcast."""
    payload = dhcp(DHCPOFFER, client_mac, nonce, xid, yiaddr=offered_ip, server=server_ip)
    return udp4_frame(BROADCAST, server_mac, server_ip, "255.255.255.255", 67, 68, payload)


# ---- IPv6 / ICMPv6 ----------------------------------------------------------

def ipv6(src, dst, next_header, payload, hop_limit=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit) + ip_bytes(src) + ip_bytes(dst) + payload


def icmpv6(src, dst, icmp_type, code, body, hop_limit=255):
    pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!IxxxB", 4 + len(body), IPPROTO_ICMPV6)
    csum = checksum(pseudo + struct.pack("!BBH", icmp_type, code, 0) + body)
    return ipv6(src, dst, IPPROTO_ICMPV6, struct.pack("!BBH", icmp_type, code, csum) + body, hop_limit)


def nd_option(opt_type, value):
    raw = bytes([opt_type, 0]) + value
    raw += b"\0" * (-len(raw) % 8)
    return raw[:1] + bytes([len(raw) // 8]) + raw[2:]


def _nd_frame(dst_mac, src_mac, src, dst, icmp_type, body, nonce):
    body += nd_option(ND_OPT_NONCE, nonce)
    return ethernet(dst_mac, src_mac, ETH_P_IPV6, icmpv6(src, dst, icmp_type, 0, body))


def neighbor_solicitation(mac, src, target, nonce):
    """NS for `target` to its solicited-node multicast group, with our SLLA."""
    group, group_mac = solicited_node(target)
    body = bytes(4) + ip_bytes(target) + nd_option(ND_OPT_SLLA, mac_bytes(mac))
    return _nd_frame(group_mac, mac, src, group, ICMP6_NS, body, nonce)


def neighbor_advertisement(mac, target, nonce, dst="ff02::1", dst_mac=None, router=False, src=None):
    """Unsolicited NA (override) claiming `target` for `mac`, by default to
    all nodes, from `target` itself unless `src` is given."""
    flags = (0x80000000 if router else 0) | 0x20000000
    body = struct.pack("!I", flags) + ip_bytes(target) + nd_option(ND_OPT_TLLA, mac_bytes(mac))
    return _nd_frame(dst_mac or multicast_mac6(dst), mac, src or target, dst, ICMP6_NA, body, nonce)


def router_solicitation(mac, src, nonce):
    body = bytes(4) + nd_option(ND_OPT_SLLA, mac_bytes(mac))
    return _nd_frame(multicast_mac6("ff02::2"), mac, src, "ff02::2", ICMP6_RS, body, nonce)


def router_advertisement(mac, src, nonce, lifetime=0):
    """RA to all nodes.  lifetime=0 and no prefix: seen by the sniffer, harmless to routes."""
    body = struct.pack("!BBHII", 64, 0, lifetime, 0, 0) + nd_option(ND_OPT_SLLA, mac_bytes(mac))
    return _nd_frame(multicast_mac6("ff02::1"), mac, src, "ff02::1", ICMP6_RA, body, nonce)


def link_local(mac):
    """The EUI-64 link-local address the kernel gives an interface with `mac`."""
    b = bytearray(mac_bytes(mac))
    b[0] ^= 0x02
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])))


# ---- parsing (for predicates on captured frames) ---------------------------

class Frame:
    """A received Ethernet frame, decoded lazily and forgivingly."""

    def __init__(self, data):
        self.data = data
        self.dst = mac_str(data[0:6])
        self.src = mac_str(data[6:12])
        self.ethertype, = struct.unpack("!H", data[12:14])
        self.payload = data[14:]

    def __contains__(self, nonce):
        return nonce in self.data

    @property
    def arp(self):
        """(op, sender_mac, sender_ip, target_mac, target_ip) or None."""
        if self.ethertype != ETH_P_ARP or len(self.payload) < 28:
            return None
        p = self.payload
        return (struct.unpack("!H", p[6:8])[0], mac_str(p[8:14]), str(ipaddress.IPv4Address(p[14:18])),
                mac_str(p[18:24]), str(ipaddress.IPv4Address(p[24:28])))

    @property
    def icmpv6(self):
        """(type, src, dst, target-or-None) or None."""
        p = self.payload
        if self.ethertype != ETH_P_IPV6 or len(p) < 44 or p[6] != IPPROTO_ICMPV6:
            return None
        src, dst = (str(ipaddress.IPv6Address(p[o:o + 16])) for o in (8, 24))
        icmp_type = p[40]
        target = str(ipaddress.IPv6Address(p[48:64])) if icmp_type in (ICMP6_NS, ICMP6_NA) and len(p) >= 64 else None
        return icmp_type, src, dst, target
