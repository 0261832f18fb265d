"""Validation and derivation of MAC and IP addresses (pure)."""

import ipaddress
import re

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", re.ASCII)
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def parse_mac(text):
    """'BC-24-11-2C-69-EC' -> 'bc:24:11:2c:69:ec'; ValueError with the reason."""
    text = str(text).strip()
    if not _MAC.fullmatch(text):
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


def unusable(ip):
    """Why an address can be no host's (nor a gateway's) own, or None."""
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.version == 4 and ip == _LIMITED_BROADCAST:
        return f"{ip} is the broadcast address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return f"{ip} is an IPv4-mapped IPv6 address (write {ip.ipv4_mapped})"
    return None


def parse_ip(text):
    """A unicast IPv4/IPv6 host address; ValueError with the reason."""
    text = str(text).strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        hint = ""
        if "/" in text:
            hint = " (write the address without a prefix length)"
            try:
                net = ipaddress.ip_network(text, strict=True)
                if net.num_addresses > 1:
                    hint = f": {net} is a prefix, not a host address"
            except ValueError:
                pass
        raise ValueError(f"{text!r} is not an IP address{hint}") from None
    if getattr(ip, "scope_id", None):
        raise ValueError(f"{text!r}: an address with a zone index (%...) is not a host address here")
    why = unusable(ip)
    if why:
        raise ValueError(f"{why}, not a unicast host address")
    return ip


def subnet_role(ip, subnets):
    """Why `ip` cannot be a host in one of `subnets` (its network address, or
    for IPv4 its broadcast address), or None.  A /31, /32, /127 or /128 has
    neither (RFC 3021)."""
    for net in subnets:
        if net.version != ip.version or ip not in net or net.prefixlen >= net.max_prefixlen - 1:
            continue
        if ip == net.network_address:
            what = "network address" if ip.version == 4 else "subnet-router anycast address"
            return f"{ip} is the {what} of {net}"
        if ip.version == 4 and ip == net.broadcast_address:
            return f"{ip} is the broadcast address of {net}"
    return None


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
