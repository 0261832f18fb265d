"""Validation and derivation of MAC and IP addresses (pure)."""

import ipaddress
import re

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


def parse_mac(text):
    """'BC-24-11-2C-69-EC' -> 'bc:24:11:2c:69:ec'; ValueError with the reason."""
    text = str(text).strip()
    if not _MAC.match(text):
        raise ValueError(f"{text!r} is not a MAC address (expected six hex pairs, "
                         "like bc:24:11:2c:69:ec)")
    mac = text.lower().replace("-", ":")
    first = int(mac[:2], 16)
    if first & 1:
        raise ValueError(f"{mac} is a multicast/broadcast MAC address, "
                         "a gateway needs a unicast one")
    if mac == "00:00:00:00:00:00":
        raise ValueError("00:00:00:00:00:00 is not a usable MAC address")
    return mac


def parse_ip(text):
    """A unicast IPv4/IPv6 host address; ValueError with the reason."""
    text = str(text).strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        hint = " (write the address without a prefix length)" if "/" in text else ""
        raise ValueError(f"{text!r} is not an IP address{hint}") from None
    if ip.is_multicast or ip.is_unspecified or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        raise ValueError(f"{ip} is not a unicast host address")
    return ip


def eui64_link_local(mac):
    """The EUI-64 IPv6 link-local address of a MAC (RFC 4291 appendix A)."""
    octets = bytearray(int(x, 16) for x in mac.split(":"))
    octets[0] ^= 0x02
    iid = bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + iid)


def solicited_node(ip6):
    """The solicited-node multicast address of an IPv6 address (RFC 4291 2.7.1)."""
    low24 = int(ip6) & 0xFFFFFF
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low24)
