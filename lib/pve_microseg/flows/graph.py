"""`pve-microseg graph`: a picture of who can reach whom on the managed bridges.

What is drawn is what `status` finds (flows/status.py: the same reads, the
same answers of the other nodes over ssh, asked once), plus what the guests'
configs say of their NICs (name, MAC, the binding pre-start and the udev
rule give their ports, decided as they decide it: with every guest's
claims).  policy/graph.py turns it into DOT; a .svg or .png is drawn by
graphviz's dot (edges/graphviz.py) and every output is written atomically.
"""

from pathlib import Path

from ..edges import files, graphviz, pveconf
from ..edges.cluster import guest_configs, guests
from ..model.errors import MicrosegError
from ..policy import bindings, graph as picture_policy
from . import status
from .result import Result

# the file name's suffix -> how it is written (None: the DOT text itself)
SUFFIXES = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png"}


def output_kind(path):
    """None (DOT text), 'svg' or 'png' for an output file name; ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: expected a file name ending in {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def _closed(warnings, nic, bridge):
    """Why a NIC on a port-security bridge got no binding (guest_bindings' own words)."""
    where = f"{nic.key} on {bridge}: "
    for w in warnings:
        if where in w:
            return w.split(where, 1)[1]
    return "no port-security binding is decided for it"


def _guest_nics(bridge, cfg, ipam, read, claims, rows):
    """GuestNic of every NIC on `bridge`, for the guests status reported."""
    out = []
    for guest, gc in read:
        row = rows.get(guest.vmid)
        on = [n for n in gc.nics if n.bridge == bridge.name]
        if row is None or not on:
            continue
        bound, warnings = bindings.guest_bindings(gc, cfg, ipam, claims) if bridge.port_security != "off" else ((), ())
        by_nic = {b.nic: b for b in bound}
        mode = "off" if bridge.port_security == "off" else bindings.mode_of(bridge, cfg, guest.vmid)
        for nic in on:
            b = by_nic.get(nic.key)
            closed = None if (b is not None or mode == "off") else _closed(warnings, nic, bridge.name)
            addresses = tuple((b.ipv4 or ()) + (b.ipv6 or ())) if b is not None else ()
            out.append(picture_policy.GuestNic(
                vmid=guest.vmid, nic=nic.index, node=guest.node, type=guest.type, name=gc.name, mac=nic.mac,
                addresses=addresses, port_security=mode, closed=closed, problems=tuple(row["problems"])))
    return out


def pictures(paths, nft_factory=None, vnet=None, timeout=5.0):
    """(BridgePicture list, status's data) of the managed bridges, or of `vnet` alone."""
    found = status.cluster(paths, nft_factory, timeout).data
    cfg = pveconf.config(paths)
    chosen = [b for b in cfg.bridges if vnet is None or b.name == vnet]
    if vnet is not None and not chosen:
        raise MicrosegError(f"--vnet {vnet}: not a managed bridge or VNet (managed: "
                            f"{', '.join(sorted(cfg.names)) or 'none'})")
    ipam = pveconf.ipam(paths)
    everyone = list(guest_configs(paths, guests(paths)))
    read = [(g, gc) for g, gc, error in everyone if gc is not None]
    claims = bindings.claims([gc for _, gc in read], cfg, ipam, complete=all(e is None for _, _, e in everyone))
    rows = {r["bridge"]: r for r in found["bridges"]}
    guest_rows = {r["vmid"]: r for r in found["guests"]}
    out = [picture_policy.picture(b, rows[b.name], _guest_nics(b, cfg, ipam, read, claims, guest_rows),
                                  found.get("unbound-ports") or {})
           for b in chosen]
    return out, found


def graph(paths, nft_factory=None, vnet=None, output=None, timeout=5.0):
    """The picture as DOT text (no output), or written to `output` (.dot/.gv
    as DOT, .svg/.png drawn by dot); the exit status is 0 when it is drawn,
    whatever it shows (`status` is the one that alerts)."""
    drawn, found = pictures(paths, nft_factory, vnet, timeout)
    text = picture_policy.dot(drawn)
    summary = {"bridges": [p.name for p in drawn], "guest-nics": sum(len(p.guests) for p in drawn),
               "unbound": sum(g.warning for p in drawn for g in p.guests), "problems": len(found["problems"])}
    if output is None:
        return Result(dict(summary, dot=text))
    kind = output_kind(output)
    body = text if kind is None else graphviz.draw(paths.dot, text, kind)
    files.write_atomic(Path(output), body, mode=0o644)
    return Result(dict(summary, output=str(output), format=kind or "dot"))
