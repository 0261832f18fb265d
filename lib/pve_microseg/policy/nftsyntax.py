"""Our nftables table in nft's own syntax, as `nft list table` prints it (pure).

The ruleset is built and loaded as libnftables JSON (policy/ruleset.py); this
renders the table such a transaction leaves behind, without a kernel, the way
nft lists it: maps first, then the chains in the
order they were created, rules in order, `==` left out, map elements sorted
as nft sorts them, one per line, the bridge family's priority -200 as `filter`.
`pve-microseg show --nft` prints it; tests/golden/ holds it for a few
scenarios, checked against the kernel's own listing in the QEMU tier.

One match reads differently by release: a neighbour advertisement's target
is matched as raw transport-header bytes (@th,64,128), the only form
nftables 1.0.6 (Debian 12) accepts; nftables 1.1 (Debian 13) lists the same
kernel expression as `icmpv6 taddr ADDR`, and so does this module (clearer,
but only nft >= 1.1 reads that line back).

A drop's per-port meter (ruleset.meter) reads differently by release too:
nftables 1.1 lists it as a set of its own (`set drops-<class>`, flags
dynamic, listed where the rule created it) and the statement as `add
@drops-<class> { iifname counter }`; 1.0.6 lists the statement as written
(`meter drops-<class> size N { iifname counter }`) and no set in the table.
The same goes for the log's rate limit per port (`log: on`, meters
log-<class>: `{ iifname limit rate 1/minute burst 1 packets }`).
`meters_as_sets` chooses (True: 1.1).

Only the expressions ruleset.py generates are known; anything else raises
ValueError, so a new rule shape cannot slip past the golden files unseen.
"""

import ipaddress

# meta keys nft prints without the `meta` keyword
_BARE_META = ("iifname", "oifname", "iif", "oif")
# string-typed keys: their values are printed quoted
_QUOTED = ("iifname", "oifname", "ibrname", "obrname")
# the bridge family's standard priorities (nft's names)
_PRIORITIES = {-300: "dstnat", -200: "filter", 100: "out", 300: "srcnat"}
# the type of a set keyed by these meta keys
_KEY_TYPES = {"iifname": "ifname", "oifname": "ifname"}
_MAP_NEWLINE = ",\n\t\t\t     "


def _key_order(item):
    """nft lists a map's elements sorted by key, an interface name compared as
    the little-endian number its 16 bytes make (the last byte weighs most)."""
    return item[0].encode().ljust(16, b"\0")[::-1]


def _left(expr):
    """(text, key) of the left-hand side of a match or the key of a vmap."""
    if "concat" in expr:
        return " . ".join(_left(e)[0] for e in expr["concat"]), None
    if "meta" in expr:
        key = expr["meta"]["key"]
        return (key if key in _BARE_META else f"meta {key}"), key
    if "payload" in expr:
        p = expr["payload"]
        if "base" in p:
            return f"@{p['base']},{p['offset']},{p['len']}", None
        return f"{p['protocol']} {p['field']}", p["field"]
    raise ValueError(f"nftsyntax: unknown expression {expr!r}")


def _value(value, key):
    if isinstance(value, dict) and "set" in value:        # anonymous: in the order generated
        return "{ " + ", ".join(_value(v, key) for v in value["set"]) + " }"
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, (dict, list)):
        raise ValueError(f"nftsyntax: unknown value {value!r}")
    if key in _QUOTED and not str(value).startswith("@"):     # "@name": a set, not a name
        return f'"{value}"'
    return str(value)


# the raw match ruleset.py uses for a neighbour advertisement's target address
_ND_TARGET = {"base": "th", "offset": 64, "len": 128}


def _limit(limit):
    """A packet rate limit as nft lists it (ruleset.log_statements: no byte rates, no `over`)."""
    if set(limit) - {"rate", "per", "burst"} or not isinstance(limit.get("rate"), int):
        raise ValueError(f"nftsyntax: unknown limit {limit!r}")
    burst = f" burst {limit['burst']} packets" if limit.get("burst") else ""
    return f"limit rate {limit['rate']}/{limit['per']}{burst}"


def _meter(m, as_set):
    key, _ = _left(m["key"])
    if m.get("stmt") == {"counter": None}:
        stmt = "counter"
    elif isinstance(m.get("stmt"), dict) and set(m["stmt"]) == {"limit"}:
        stmt = _limit(m["stmt"]["limit"])
    else:
        raise ValueError(f"nftsyntax: unknown meter statement {m!r}")
    if as_set:
        return f"add @{m['name']} {{ {key} {stmt} }}"
    return f"meter {m['name']} size {m['size']} {{ {key} {stmt} }}"


def _log(log):
    """A log statement as nft lists it: prefix and flags (the level is the
    default, warn, which nft does not list)."""
    if set(log) - {"prefix", "flags"}:
        raise ValueError(f"nftsyntax: unknown log statement {log!r}")
    flags = log.get("flags")
    flags = [flags] if isinstance(flags, str) else list(flags or ())
    return "log" + (f' prefix "{log["prefix"]}"' if "prefix" in log else "") + \
        (f" flags {', '.join(flags)}" if flags else "")


def _statement(stmt, meters_as_sets=True):
    if "meter" in stmt:
        return _meter(stmt["meter"], meters_as_sets)
    if "log" in stmt:
        return _log(stmt["log"] or {})
    if "match" in stmt:
        m = stmt["match"]
        if m["left"].get("payload") == _ND_TARGET and m["op"] == "==":
            return f"icmpv6 taddr {ipaddress.IPv6Address(int(m['right'], 16))}"
        left, key = _left(m["left"])
        op = "" if m["op"] == "==" else f"{m['op']} "
        return f"{left} {op}{_value(m['right'], key)}"
    if "counter" in stmt:
        c = stmt["counter"] or {}
        return f"counter packets {c.get('packets', 0)} bytes {c.get('bytes', 0)}"
    if "vmap" in stmt:
        left, _ = _left(stmt["vmap"]["key"])
        return f"{left} vmap {stmt['vmap']['data']}"
    for verdict in ("accept", "drop", "return"):
        if verdict in stmt:
            return verdict
    for verdict in ("goto", "jump"):
        if verdict in stmt:
            return f"{verdict} {stmt[verdict]['target']}"
    raise ValueError(f"nftsyntax: unknown statement {stmt!r}")


def _rule(rule, meters_as_sets=True):
    text = " ".join(_statement(s, meters_as_sets) for s in rule["expr"])
    if rule.get("comment"):
        text += f' comment "{rule["comment"]}"'
    return text


def _element(elem, types):
    """One set element: a value, or a concatenation of values and ranges."""
    parts = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
    out = []
    for part, kind in zip(parts, types):
        if isinstance(part, dict) and "range" in part:
            out.append("-".join(part["range"]))
        elif isinstance(part, dict) and "prefix" in part:
            out.append(f"{part['prefix']['addr']}/{part['prefix']['len']}")
        elif isinstance(part, dict):
            raise ValueError(f"nftsyntax: unknown set element {elem!r}")
        else:
            out.append(f'"{part}"' if kind == "ifname" else str(part))
    return " . ".join(out)


class _Table:
    """The objects of one table, built up by the commands of transactions."""

    def __init__(self, meters_as_sets=True):
        self.maps, self.chains = {}, {}          # sets and maps; chains (dicts keep creation order)
        self.meters_as_sets = meters_as_sets

    def add(self, kind, obj):
        if kind == "map":
            self.maps.setdefault(obj["name"], {"type": obj["type"], "map": obj["map"], "elements": {},
                                               "flags": obj.get("flags", [])})
        elif kind == "set":
            types = obj["type"] if isinstance(obj["type"], list) else [obj["type"]]
            self.maps.setdefault(obj["name"], {"type": types, "flags": obj.get("flags", []), "items": []})
        elif kind == "chain":
            self.chains.setdefault(obj["name"], {"hook": obj.get("hook"), "prio": obj.get("prio"),
                                                 "type": obj.get("type"), "policy": obj.get("policy"),
                                                 "rules": []})
        elif kind == "rule":
            for stmt in obj["expr"]:
                if "meter" in stmt and self.meters_as_sets:      # nft 1.1: the meter's set, created here
                    m = stmt["meter"]
                    self.maps.setdefault(m["name"], {"type": [_KEY_TYPES[m["key"]["meta"]["key"]]], "size": m["size"],
                                                     "flags": ["dynamic"], "items": []})
            self.chains[obj["chain"]]["rules"].append(_rule(obj, self.meters_as_sets))
        elif kind == "element" and "items" in self.maps[obj["name"]]:
            s = self.maps[obj["name"]]
            s["items"] += [_element(e, s["type"]) for e in obj["elem"] if _element(e, s["type"]) not in s["items"]]
        elif kind == "element":
            for key, data in obj["elem"]:
                self.maps[obj["name"]]["elements"][key] = _statement(data)
        elif kind != "table":
            raise ValueError(f"nftsyntax: cannot add a {kind}")

    def flush(self, kind, obj):
        if kind == "set":
            self.maps[obj["name"]]["items"] = []
        elif kind == "map":
            self.maps[obj["name"]]["elements"] = {}
        elif kind == "chain":
            self.chains[obj["name"]]["rules"] = []
        else:
            raise ValueError(f"nftsyntax: cannot flush a {kind}")

    def delete(self, kind, obj):
        if kind == "chain":
            del self.chains[obj["name"]]
        elif kind == "element":
            for key in obj["elem"]:
                del self.maps[obj["name"]]["elements"][key]
        else:
            raise ValueError(f"nftsyntax: cannot delete a {kind}")

    def render(self, family, name):
        blocks = []
        for map_name, m in self.maps.items():
            if "items" in m:                    # a set
                lines = [f"\tset {map_name} {{", f"\t\ttype {' . '.join(m['type'])}"]
                if m.get("size"):
                    lines.append(f"\t\tsize {m['size']}")
                if m["flags"]:
                    lines.append(f"\t\tflags {', '.join(m['flags'])}")
                if m["items"]:
                    # a hash set lists in hash order: shown sorted (tests/golden normalises the kernel's)
                    lines.append("\t\telements = { " + _MAP_NEWLINE.join(sorted(m["items"])) + " }")
                blocks.append(lines + ["\t}"])
                continue
            lines = [f"\tmap {map_name} {{", f"\t\ttype {m['type']} : {m['map']}"]
            if m["flags"]:
                lines.append(f"\t\tflags {', '.join(m['flags'])}")
            if m["elements"]:
                # an interval map lists its elements in ascending key order
                order = (lambda item: item[0].encode()) if "interval" in m["flags"] else _key_order
                elems = [f'"{k}" : {v}' for k, v in sorted(m["elements"].items(), key=order)]
                lines.append("\t\telements = { " + _MAP_NEWLINE.join(elems) + " }")
            blocks.append(lines + ["\t}"])
        for chain_name, c in self.chains.items():
            lines = [f"\tchain {chain_name} {{"]
            if c["hook"]:
                prio = _PRIORITIES.get(c["prio"], c["prio"])
                lines.append(f"\t\ttype {c['type']} hook {c['hook']} priority {prio}; policy {c['policy']};")
            lines += [f"\t\t{r}" for r in c["rules"]]
            blocks.append(lines + ["\t}"])
        body = "\n\n".join("\n".join(b) for b in blocks)
        return f"table {family} {name} {{\n" + (body + "\n" if body else "") + "}\n"


def table(transactions, family, name, meters_as_sets=True):
    """The table `family name` after these transactions ({"nftables": [...]}),
    applied in order to an empty ruleset, in `nft list table` syntax; None
    when the table does not exist at the end.  meters_as_sets: as nftables
    1.1 lists meters (see above); False: as 1.0.6 does."""
    current = None
    for transaction in transactions:
        for command in transaction["nftables"]:
            (verb, body), = command.items()
            (kind, obj), = body.items()
            if kind == "table":
                if (obj["family"], obj["name"]) != (family, name):
                    continue
                if verb == "add" and current is None:
                    current = _Table(meters_as_sets)
                elif verb == "delete":
                    current = None
                continue
            if (obj.get("family"), obj.get("table")) != (family, name):
                continue
            if current is None:
                raise ValueError(f"nftsyntax: {verb} {kind} before table {family} {name} exists")
            getattr(current, verb)(kind, obj)
    return None if current is None else current.render(family, name)


def rule_text(rule):
    """One rule (libnftables JSON, as sent or as listed) in nft syntax, for
    messages (`pve-microseg explain`); a statement this module does not
    know is shown as its JSON."""
    import json
    parts = []
    for stmt in rule.get("expr", []):
        try:
            m = stmt.get("match", {})
            if m.get("left", {}).get("payload") == _ND_TARGET and isinstance(m.get("right"), int):
                stmt = {"match": dict(m, right=f"0x{m['right']:032x}")}
            parts.append(_statement(stmt))
        except (ValueError, TypeError, KeyError, AttributeError):
            parts.append(json.dumps(stmt, sort_keys=True))
    text = " ".join(parts)
    if rule.get("comment"):
        text += f' comment "{rule["comment"]}"'
    return text
