"""Another node's answer to `status` (its `status --local --output-format
json`), checked strictly (pure).

The answer comes from another program on another machine (possibly another
version of pve-microseg, or something else answering on ssh).  Only an
answer of exactly the expected shape is believed; anything else becomes
{"error": "unknown answer: ..."} for that node, which `status` reports and
counts as unprotected (fail closed): a bridge is never shown as protected
on the word of an answer we do not understand.

The shape (flows/status.py local()):

    {"node": str, "source": str,
     "bridges": {bridge: {"present": bool, "rules": bool}},   # every managed bridge
     "unbound-ports": [{"port": str, "bridge": str}],          # optional (older versions)
     "proxmox-firewall": str,                                  # optional (older versions)
     "nd-target-bound": bool,                                  # optional
     "drops": [{"vmid": int|null, "nic": str|null, "port": str,  # optional (older versions)
                "bridge": str|null, "class": str, "packets": int, "bytes": int}]}
    or, when the node cannot read its nftables:
    {"node": str, "error": str, "proxmox-firewall": str}

Booleans are JSON true/false only: "no", 0 or null are not booleans; counts
are integers >= 0 (not booleans, not floats).
Keys this version does not know are ignored (a newer node may say more).
"""

import json

UNKNOWN = "unknown answer"
_MAX_SHOWN = 60


class _Unfit(Exception):
    pass


def _shown(value):
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        return "(something nested too deeply)"
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _need(ok, why):
    if not ok:
        raise _Unfit(why)


def _string(answer, key):
    if key not in answer:
        return None
    _need(isinstance(answer[key], str), f'"{key}" is {_shown(answer[key])}, not a string')
    return answer[key]


def _bool(mapping, key, where):
    _need(key in mapping, f"{where} has no \"{key}\"")
    _need(isinstance(mapping[key], bool), f"{where}: \"{key}\" is {_shown(mapping[key])}, not true or false")
    return mapping[key]


def _bridges(value, managed):
    _need(isinstance(value, dict), f'"bridges" is {_shown(value)}, not an object')
    out = {}
    for name, st in value.items():
        _need(isinstance(st, dict), f"bridge {name}: {_shown(st)} is not an object")
        out[name] = {"present": _bool(st, "present", f"bridge {name}"),
                     "rules": _bool(st, "rules", f"bridge {name}")}
    missing = sorted(set(managed) - set(out))
    _need(not missing, f"it says nothing about {', '.join(missing)}")
    return out


def _unbound(value):
    _need(isinstance(value, list), f'"unbound-ports" is {_shown(value)}, not a list')
    out = []
    for item in value:
        _need(isinstance(item, dict) and isinstance(item.get("port"), str)
              and isinstance(item.get("bridge"), str), f"unbound port {_shown(item)} is not "
                                                       '{"port": ..., "bridge": ...}')
        out.append({"port": item["port"], "bridge": item["bridge"]})
    return out


def _nullable(item, key, kind, where):
    _need(key in item, f"{where} has no \"{key}\"")
    value = item[key]
    _need(value is None or isinstance(value, kind) and not isinstance(value, bool),
          f"{where}: \"{key}\" is {_shown(value)}")
    return value


def _count(item, key, where):
    value = item.get(key)
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          f"{where}: \"{key}\" is {_shown(value)}, not a count")
    return value


def _drops(value):
    _need(isinstance(value, list), f'"drops" is {_shown(value)}, not a list')
    out = []
    for item in value:
        _need(isinstance(item, dict), f"drop row {_shown(item)} is not an object")
        where = f"drop row {_shown(item)}"
        row = {"port": _nullable(item, "port", str, where), "class": _nullable(item, "class", str, where),
               "vmid": _nullable(item, "vmid", int, where), "nic": _nullable(item, "nic", str, where),
               "bridge": _nullable(item, "bridge", str, where),
               "packets": _count(item, "packets", where), "bytes": _count(item, "bytes", where)}
        _need(row["port"] is not None and row["class"] is not None, f"{where} names no port or class")
        out.append(row)
    return out


def parse(answer, managed=()):
    """The node's answer with only what we understand, checked; or
    {"error": "unknown answer: <why>"}.  `managed`: the names of the managed
    bridges, each of which a node must say something about.  An answer that
    is already {"error": str} (the node could not be asked) passes as is."""
    try:
        _need(isinstance(answer, dict), f"{_shown(answer)} is not an object")
        out = {}
        for key in ("node", "source", "proxmox-firewall"):
            value = _string(answer, key)
            if value is not None:
                out[key] = value
        if "error" in answer:
            out["error"] = _string(answer, "error")
            return out
        _need("bridges" in answer, 'no "bridges"')
        out["bridges"] = _bridges(answer["bridges"], managed)
        if "unbound-ports" in answer:
            out["unbound-ports"] = _unbound(answer["unbound-ports"])
        if "nd-target-bound" in answer:
            out["nd-target-bound"] = _bool(answer, "nd-target-bound", "the answer")
        if "drops" in answer:
            out["drops"] = _drops(answer["drops"])
        return out
    except _Unfit as e:
        return {"error": f"{UNKNOWN} ({e}): its L2 rules count as missing"}
