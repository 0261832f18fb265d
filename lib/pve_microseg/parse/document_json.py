"""A parsed microseg.yaml (model.config.Document) as JSON and back (pure).

The guest hookscript keeps the parsed file under /run keyed by its exact
text (edges/state.py), so a guest start does not import PyYAML.
"""

import ipaddress
from dataclasses import asdict

from ..model.config import BridgeSpec, Document, GuestSettings, HookscriptSettings


def to_json(doc):
    def spec(b):
        d = asdict(b)
        d["ips"] = [(str(ip), line) for ip, line in b.ips]
        d["subnets"] = [(str(n), line) for n, line in b.subnets]
        return d
    return {"bridges": [spec(b) for b in doc.bridges], "hookscript": asdict(doc.hookscript),
            "port_security": doc.port_security, "intra_vnet_routing": doc.intra_vnet_routing, "log": doc.log,
            "guests": [dict(asdict(g), addresses=[[i, list(a)] for i, a in g.addresses.items()])
                       for g in doc.guests.values()]}


def from_json(data):
    """Document; KeyError/TypeError/ValueError on a malformed input."""
    bridges = []
    for d in data["bridges"]:
        d = dict(d, macs=[tuple(m) for m in d["macs"]],
                 ips=[(ipaddress.ip_address(ip), line) for ip, line in d["ips"]],
                 subnets=[(ipaddress.ip_network(n), line) for n, line in d["subnets"]])
        bridges.append(BridgeSpec(**d))
    guests = {g["vmid"]: GuestSettings(**dict(g, addresses={i: tuple(a) for i, a in g["addresses"]}))
              for g in data["guests"]}
    return Document(bridges=bridges, hookscript=HookscriptSettings(**data["hookscript"]), guests=guests,
                    port_security=data.get("port_security"), intra_vnet_routing=data.get("intra_vnet_routing"),
                    log=data.get("log") is True)
