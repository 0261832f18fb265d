"""What the rules dropped, per guest port and class (pure).

Each drop class has a meter in the table (policy/ruleset.py: drop-<class>,
drops-<class>), one element per input port that dropped something of that
class, with a counter.  nftables 1.1 lists a meter as a set `drops-<class>`
of the table; 1.0.6 lists it only under `list meters`, as a `meter`.
counts() reads either; rows() turns the counts into what `status --drops`,
the Prometheus textfile and anything else show:

    {"vmid": int or None, "nic": "net<n>" or None, "port": str,
     "bridge": str or None, "class": str, "packets": int, "bytes": int}

vmid/nic are None for a port that is not a guest's (a frame from the uplink
to a guest port: guest-to-guest seen at the receiving node); bridge is None
for a port no managed bridge holds now (the guest has gone).
"""

from . import ruleset
from .bindings import port_owner

_PREFIX = ruleset.drop_meter("")


def _class(name):
    cls = name[len(_PREFIX):] if isinstance(name, str) and name.startswith(_PREFIX) else None
    return cls if cls in ruleset.DROP_CLASSES else None


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def counts(objs):
    """{(class, port): (packets, bytes)} from libnftables JSON objects of our
    table: `set` (nftables 1.1) or `meter` (1.0.6) objects named drops-<class>;
    anything else is ignored.  An element listed twice (a meter seen both
    ways) counts once."""
    out = {}
    for obj in objs or ():
        if not isinstance(obj, dict):
            continue
        for kind in ("set", "meter"):
            body = obj.get(kind)
            if not isinstance(body, dict):
                continue
            if body.get("family", ruleset.FAMILY) != ruleset.FAMILY or \
                    body.get("table", ruleset.TABLE) != ruleset.TABLE:
                continue
            cls = _class(body.get("name"))
            if cls is None:
                continue
            for elem in body.get("elem") or ():
                inner = elem.get("elem") if isinstance(elem, dict) else None
                if not isinstance(inner, dict) or not isinstance(inner.get("val"), str):
                    continue
                counter = inner.get("counter") if isinstance(inner.get("counter"), dict) else {}
                out.setdefault((cls, inner["val"]), (_count(counter.get("packets")), _count(counter.get("bytes"))))
    return out


def sort_key(row):
    """Top offenders first: most packets, then most bytes; then by name."""
    return (-row["packets"], -row["bytes"], row.get("node") or "", row["port"], row["class"])


def rows(counted, port_bridge=None):
    """The rows of these counts ({(class, port): (packets, bytes)}), top
    offenders first; port_bridge: {port: the bridge it is on now}."""
    port_bridge = port_bridge or {}
    out = []
    for (cls, port), (packets, nbytes) in counted.items():
        owner = port_owner(port)
        out.append({"vmid": owner[0] if owner else None, "nic": f"net{owner[1]}" if owner else None,
                    "port": port, "bridge": port_bridge.get(port), "class": cls,
                    "packets": packets, "bytes": nbytes})
    return sorted(out, key=sort_key)
