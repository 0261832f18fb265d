"""Read the NICs of a VM (qemu-server) or container (pve-container) config (pure).

Only the main section counts: the first line starting with `[` begins
`[PENDING]`, `[special:cloudinit]` or a snapshot, none of which is the
running configuration.  Leading `#` lines are the description.

    net0: virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1          (VM)
    ipconfig0: ip=10.100.0.5/24,gw=10.100.0.1,ip6=auto            (VM, cloud-init)
    net0: name=eth0,bridge=web,hwaddr=BC:24:11:47:83:11,ip=10.100.0.6/24,type=veth   (CT)

Keys we do not use are not validated (Proxmox does that); a `net<N>` or
`ipconfig<N>` we cannot read is an error naming file, line and key, because
guessing there would write a wrong anti-spoofing set.
"""

import ipaddress
import re

from ..model.errors import GuestConfigError
from ..model.guest import GuestConfig, Nic
from . import addresses, names

QEMU_MODELS = ("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
               "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio",
               "vmxnet3")
MAX_NICS = names.MAX_NICS                   # net0 .. net31
_KEY = re.compile(r"(?P<key>[a-z][a-z_]*[0-9]*):\s*(?P<value>.*)", re.ASCII)   # as qemu-server/pve-container


def main_section(text):
    """[(line number, key, value)] of the main section."""
    out = []
    for lineno, raw in enumerate(text.split("\n"), 1):          # LF only, as Proxmox splits
        line = raw.strip()
        if line.startswith("["):
            break
        if not line or line.startswith("#"):
            continue
        m = _KEY.fullmatch(line)
        if m:
            out.append((lineno, m.group("key"), m.group("value").strip()))
    return out


def property_string(value, default_key=None):
    """'virtio=BC:..,bridge=web' -> {'virtio': 'BC:..', 'bridge': 'web'}."""
    out = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
        elif default_key:
            k, v = default_key, part
        else:
            raise ValueError(f"{part!r} has no key= (expected key=value)")
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _host(text, family):
    """'10.100.0.5/24' -> '10.100.0.5'; None for dhcp/auto/manual."""
    if text in ("dhcp", "auto", "manual", ""):
        return None
    iface = ipaddress.ip_interface(text)       # ValueError if malformed
    if iface.version != family:
        raise ValueError(f"{text} is not an IPv{family} address")
    return str(iface.ip)


def _bool(text):
    if text not in ("0", "1"):
        raise ValueError(f"{text!r} is not 0 or 1")
    return text == "1"


def _qemu_nic(index, props):
    model = mac = None
    for m in QEMU_MODELS:
        if m in props:
            model, mac = m, props[m]
    if model is None and "model" in props:
        model, mac = props["model"], props.get("macaddr")
    if model is None:
        raise ValueError("no NIC model (expected e.g. virtio=<MAC>)")
    return model, mac or props.get("macaddr")


def parse(text, vmid, guest_type, path="<guest config>"):
    """Text of `<vmid>.conf` -> GuestConfig.  Raises GuestConfigError."""
    nets, ipconfigs, hookscript, lock, name, warnings = {}, {}, None, None, None, []
    for lineno, key, value in main_section(text):
        if key == "hookscript":
            hookscript = value
            continue
        if key == ("name" if guest_type == "qemu" else "hostname"):
            name = value or None
            continue
        if key == "lock":
            lock = value or None
            continue
        nic_key = names.nic_key(key)
        if nic_key is None:
            if names.looks_like_nic_key(key):
                warnings.append(f"{path}:{lineno}: {key}: ignored, as Proxmox does (NICs are net0-net31)")
            continue
        kind, index = nic_key
        (nets if kind == "net" else ipconfigs)[index] = (lineno, key, value)

    nics = []
    for index in sorted(nets):
        lineno, key, value = nets[index]
        try:
            nics.append(_nic(index, value, guest_type, ipconfigs.get(index)))
        except _IpconfigError as e:
            raise GuestConfigError(path, ipconfigs[index][0], ipconfigs[index][1], str(e)) from None
        except ValueError as e:
            raise GuestConfigError(path, lineno, key, str(e)) from None
    return GuestConfig(vmid=int(vmid), type=guest_type, path=str(path), nics=tuple(nics),
                       hookscript=hookscript, warnings=tuple(warnings), lock=lock, name=name,
                       text=text)


class _IpconfigError(ValueError):
    """A problem in ipconfig<N> rather than net<N>."""


def _nic(index, value, guest_type, ipconfig):
    if guest_type == "qemu":
        props = property_string(value, default_key="model")
        model, mac = _qemu_nic(index, props)
    else:
        props = property_string(value)
        model, mac = props.get("type", "veth"), props.get("hwaddr")
    if not mac:
        raise ValueError("no MAC address (Proxmox writes one when the NIC is created)")
    try:
        mac = addresses.parse_mac(mac)
    except ValueError as e:
        raise ValueError(f"MAC: {e}") from None
    tag = props.get("tag", "")
    tag = int(tag) if tag.isascii() and tag.isdigit() else None
    static, static_from = [], None
    if guest_type == "lxc":
        for k, family in (("ip", 4), ("ip6", 6)):
            host = _host(props.get(k, ""), family)
            if host:
                static.append(host)
        static_from = f"net{index} ip/ip6" if static else None
    elif ipconfig:
        try:
            ipc = property_string(ipconfig[2])
            for k, family in (("ip", 4), ("ip6", 6)):
                host = _host(ipc.get(k, ""), family)
                if host:
                    static.append(host)
        except ValueError as e:
            raise _IpconfigError(str(e)) from None
        static_from = ipconfig[1] if static else None
    return Nic(index=index, mac=mac, bridge=props.get("bridge"),
               firewall=_bool(props.get("firewall", "0")), model=model, tag=tag,
               static=tuple(static), static_from=static_from)
