"""Which of our rules a frame meets, and their verdict (pure).

An evaluator of the exact subset of nftables pve-microseg generates
(policy/ruleset.py), not a general nft interpreter: matches of meta
iifname/oifname/ibrname and of payload fields against values, anonymous
sets, prefixes, named sets and concatenations; verdict maps; accept, drop,
return, jump, goto; counter, log, set update/add and per-port meters
(counters, and the log's rate limit in a rule without a verdict) as
statements that decide nothing.  Any other shape raises UnsupportedRule,
so a new rule shape cannot be explained wrongly (tests/test_explain.py
runs every golden scenario's ruleset through check_supported).

The table comes from the transactions we send (`from_transactions`: the
desired ruleset, no kernel needed) or from the kernel's JSON listing
(`from_listing`: `nft -j list table`, the loaded one); both give the same
Table.

A frame crosses a bridge in two of the bridge family's hooks, as the kernel
runs them: prerouting (every frame a port receives, before the bridge
learns its source) and, when the bridge forwards it to another port,
forward.  A frame for the host itself (the bridge's own MAC) meets
prerouting only; a frame the host sends meets neither (output).
"""

import ipaddress
from dataclasses import dataclass, field

from ..model.errors import UnsupportedRule
from . import frame as F, ruleset

ACCEPT, DROP = "accept", "drop"
HOOKS = ("prerouting", "forward")
_MAX_DEPTH = 16                 # jumps deep: our chains nest two levels


# ------------------------------------------------------------- the table

@dataclass
class Chain:
    name: str
    hook: str = None
    prio: int = 0
    policy: str = ACCEPT
    rules: list = field(default_factory=list)        # the rules' JSON objects (expr, comment)


@dataclass
class NamedSet:
    name: str
    types: tuple                    # ("ifname", "ether_addr") ...
    elements: list = field(default_factory=list)     # set: values; map: [key, verdict] pairs
    is_map: bool = False


@dataclass
class Table:
    chains: dict = field(default_factory=dict)
    sets: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict, repr=False, compare=False)    # compiled rules, parsed sets

    def base_chains(self, hook):
        return sorted((c for c in self.chains.values() if c.hook == hook), key=lambda c: c.prio)


def _types(t):
    return tuple(t) if isinstance(t, list) else (t,)


def _unwrap(elem):
    """A set element as listed: {"elem": {"val": X, "counter": ...}} is X."""
    while isinstance(elem, dict) and "elem" in elem:
        elem = elem["elem"]["val"]
    return elem


def from_transactions(transactions, family, name):
    """The table `family name` after these transactions, applied in order to
    an empty ruleset; None when it does not exist at the end."""
    table = None
    for transaction in transactions:
        for command in transaction["nftables"]:
            (verb, body), = command.items()
            (kind, obj), = body.items()
            if kind == "table":
                if (obj["family"], obj["name"]) == (family, name):
                    table = Table() if verb == "add" and table is None else (None if verb == "delete" else table)
                continue
            if (obj.get("family"), obj.get("table")) != (family, name) or table is None:
                continue
            _command(table, verb, kind, obj)
    return table


def _command(table, verb, kind, obj):
    if verb == "add" and kind == "chain":
        table.chains.setdefault(obj["name"], Chain(obj["name"], obj.get("hook"), obj.get("prio", 0),
                                                   obj.get("policy", ACCEPT)))
    elif verb == "add" and kind in ("set", "map"):
        table.sets.setdefault(obj["name"], NamedSet(obj["name"], _types(obj["type"]), is_map=kind == "map"))
    elif verb == "add" and kind == "rule":
        table.chains[obj["chain"]].rules.append(obj)
    elif verb == "add" and kind == "element":
        s = table.sets[obj["name"]]
        new = [_unwrap(e) for e in obj["elem"]]
        if s.is_map:
            keys = {k for k, _ in new}
            s.elements = [e for e in s.elements if e[0] not in keys] + [list(e) for e in new]
        else:
            s.elements += [e for e in new if e not in s.elements]
    elif verb == "flush" and kind == "chain":
        table.chains[obj["name"]].rules = []
    elif verb == "flush" and kind in ("set", "map"):
        table.sets[obj["name"]].elements = []
    elif verb == "delete" and kind == "chain":
        del table.chains[obj["name"]]
    elif verb == "delete" and kind in ("set", "map"):
        del table.sets[obj["name"]]
    elif verb == "delete" and kind == "element":
        s = table.sets[obj["name"]]
        gone = [_unwrap(e) for e in obj["elem"]]
        s.elements = [e for e in s.elements if (e[0] if s.is_map else e) not in gone]
    else:
        raise UnsupportedRule(f"explain: cannot replay '{verb} {kind}'")


def from_listing(objects, family, name):
    """The table from the kernel's JSON listing (the list of objects
    `nft -j list table` / Nft.list_table gives); None when absent."""
    table = None
    for o in objects or ():
        (kind, obj), = o.items()
        if kind == "metainfo":
            continue
        if kind == "table":
            if (obj.get("family"), obj.get("name")) == (family, name):
                table = table or Table()
            continue
        if (obj.get("family"), obj.get("table")) != (family, name):
            continue
        table = table or Table()
        if kind == "chain":
            table.chains[obj["name"]] = Chain(obj["name"], obj.get("hook"), obj.get("prio", 0),
                                              obj.get("policy", ACCEPT))
        elif kind in ("set", "map"):
            s = NamedSet(obj["name"], _types(obj["type"]), is_map=kind == "map")
            s.elements = [_unwrap(e) for e in obj.get("elem", [])]
            table.sets[obj["name"]] = s
        elif kind == "rule":
            table.chains.setdefault(obj["chain"], Chain(obj["chain"])).rules.append(obj)
        else:
            raise UnsupportedRule(f"explain: unknown object '{kind}' in the listing")
    return table


# --------------------------------------------------------------- values

_META = ("iifname", "oifname", "ibrname", "obrname")
_ETHERTYPES = {"ip": F.ETH_IP, "arp": F.ETH_ARP, "ip6": F.ETH_IP6, "vlan": F.ETH_8021Q, "8021q": F.ETH_8021Q,
               "8021ad": F.ETH_8021AD}
# (protocol, field) -> the kind of value
_FIELDS = {
    ("ether", "saddr"): "mac", ("ether", "daddr"): "mac", ("ether", "type"): "ethertype",
    ("arp", "saddr ether"): "mac", ("arp", "daddr ether"): "mac", ("arp", "saddr ip"): "ip",
    ("arp", "daddr ip"): "ip", ("arp", "operation"): "arpop",
    ("ip", "saddr"): "ip", ("ip", "daddr"): "ip", ("ip", "protocol"): "ipproto",
    ("ip6", "saddr"): "ip", ("ip6", "daddr"): "ip", ("ip6", "nexthdr"): "ipproto",
    ("udp", "sport"): "int", ("udp", "dport"): "int", ("tcp", "sport"): "int", ("tcp", "dport"): "int",
    ("icmp", "type"): "icmp", ("icmpv6", "type"): "icmpv6", ("icmpv6", "taddr"): "ip",
}
# a neighbour solicitation's/advertisement's target as raw transport-header bytes (nftables 1.0.6)
_ND_TARGET = {"base": "th", "offset": 64, "len": 128}
_SET_TYPES = {"ifname": "ifname", "ether_addr": "mac", "ipv4_addr": "ip", "ipv6_addr": "ip"}


class _Value:
    """One value of a kind, as written in a rule or a set: compares to a frame's."""

    def __init__(self, kind, raw):
        self.kind, self.raw = kind, raw
        if isinstance(raw, dict) and "prefix" in raw:
            if kind != "ip":
                raise UnsupportedRule(f"explain: a prefix for a {kind} value: {raw!r}")
            self.net = ipaddress.ip_network(f"{raw['prefix']['addr']}/{raw['prefix']['len']}", strict=False)
            self.test = lambda v: v is not None and v.version == self.net.version and v in self.net
        elif isinstance(raw, dict) and "range" in raw:
            lo, hi = (_scalar(kind, r) for r in raw["range"])
            self.test = lambda v: v is not None and _comparable(v, lo) and lo <= v <= hi
        elif isinstance(raw, (dict, list)):
            raise UnsupportedRule(f"explain: unknown value {raw!r}")
        elif kind == "ifname" and str(raw).endswith("*") and not str(raw).endswith("\\*"):
            prefix = str(raw)[:-1]
            self.test = lambda v: v is not None and v.startswith(prefix)
        else:
            value = _scalar(kind, raw)
            self.test = lambda v: v is not None and v == value


def _comparable(a, b):
    return type(a) is type(b)


def _scalar(kind, raw):
    try:
        if kind == "ifname":
            return str(raw).replace("\\*", "*")
        if kind == "mac":
            return str(raw).lower()
        if kind == "ip":
            return ipaddress.ip_address(str(raw))
        if kind == "int":
            return int(raw)
        if kind == "rawint":
            return raw if isinstance(raw, int) else int(str(raw), 16 if str(raw).startswith("0x") else 10)
        names = {"ethertype": _ETHERTYPES, "ipproto": F.IPPROTO, "icmp": F.ICMP4, "icmpv6": F.ICMP6,
                 "arpop": F.ARP_OP}[kind]
        if isinstance(raw, int):
            return raw
        if raw in names:
            return names[raw]
        return int(raw, 16 if str(raw).startswith("0x") else 10)
    except (ValueError, TypeError, KeyError):
        raise UnsupportedRule(f"explain: cannot read {raw!r} as a {kind} value") from None


# ---------------------------------------------------------- expressions

@dataclass(frozen=True)
class Packet:
    """A frame where a hook meets it: the bridge and its ports."""

    frame: F.Frame
    bridge: str
    iif: str
    oif: str = None


def _left(expr):
    """(kinds, getter) of a match's left-hand side; the getter gives the
    packet's value (a tuple for a concatenation) or None when absent."""
    if not isinstance(expr, dict):
        raise UnsupportedRule(f"explain: unknown expression {expr!r}")
    if "meta" in expr and expr["meta"].get("key") in _META:
        key = expr["meta"]["key"]
        attr = {"iifname": "iif", "oifname": "oif", "ibrname": "bridge", "obrname": "bridge"}[key]
        return ("ifname",), lambda p: getattr(p, attr)
    if "payload" in expr:
        p = expr["payload"]
        if p == _ND_TARGET:
            def raw_target(pkt):
                t = pkt.frame.field("icmpv6", "taddr")
                return None if t is None else int(t)
            return ("rawint",), raw_target
        key = (p.get("protocol"), p.get("field"))
        if key in _FIELDS:
            return (_FIELDS[key],), lambda pkt: pkt.frame.field(*key)
    if "concat" in expr:
        parts = [_left(e) for e in expr["concat"]]
        kinds = tuple(k for ks, _ in parts for k in ks)

        def concat(pkt):
            values = tuple(get(pkt) for _, get in parts)
            return None if any(v is None for v in values) else values
        return kinds, concat
    raise UnsupportedRule(f"explain: unknown expression {expr!r}")


def _set_elements(table, name, kinds):
    s = table.sets.get(name)
    key = ("set", name, kinds)
    hit = table.cache.get(key)
    if hit is not None and hit[0] is s and hit[1] == len(s.elements):
        return hit[2]
    elements = _parse_elements(s, name, kinds)
    table.cache[key] = (s, len(s.elements), elements)
    return elements


def _parse_elements(s, name, kinds):
    if s is None or s.is_map:
        raise UnsupportedRule(f"explain: no set @{name}")
    if tuple(_SET_TYPES.get(t) for t in s.types) != tuple(k if k != "rawint" else None for k in kinds):
        raise UnsupportedRule(f"explain: @{name} ({' . '.join(s.types)}) looked up with {' . '.join(kinds)}")
    return [_element(e, kinds) for e in s.elements]


def _element(elem, kinds):
    parts = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
    if len(parts) != len(kinds):
        raise UnsupportedRule(f"explain: set element {elem!r} does not fit {kinds}")
    return [_Value(k, p) for k, p in zip(kinds, parts)]


def _member(values, tests):
    return all(t.test(v) for t, v in zip(tests, values))


def _match(m, table):
    """A match statement as a function of the packet: True, False."""
    if set(m) != {"op", "left", "right"} or m["op"] not in ("==", "!="):
        raise UnsupportedRule(f"explain: unknown match {m!r}")
    kinds, get = _left(m["left"])
    right, negate = m["right"], m["op"] == "!="
    if isinstance(right, str) and right.startswith("@"):
        def lookup(pkt):
            values = get(pkt)
            values = values if isinstance(values, tuple) or values is None else (values,)
            if values is None:
                return False
            found = any(_member(values, e) for e in _set_elements(table, right[1:], kinds))
            return found != negate
        return lookup
    if len(kinds) != 1:
        raise UnsupportedRule(f"explain: a concatenation compared to {right!r}")
    if isinstance(right, dict) and "set" in right:
        options = [_Value(kinds[0], v) for v in right["set"]]
    else:
        options = [_Value(kinds[0], right)]

    def compare(pkt):
        value = get(pkt)
        if value is None:               # the protocol is not in the frame: no match, either way
            return False
        return any(o.test(value) for o in options) != negate
    return compare


# ------------------------------------------------------------- statements

_NO_OPS = ("counter", "log")


def _verdict(stmt):
    """('accept'|'drop'|'return'|'continue', None) or ('jump'|'goto', chain); None if not a verdict."""
    for v in (ACCEPT, DROP, "return", "continue"):
        if v in stmt:
            return v, None
    for v in ("jump", "goto"):
        if v in stmt:
            return v, stmt[v]["target"]
    return None


def _statement(stmt, table):
    """A statement as a function of the packet: ("match", bool), ("verdict", v),
    ("vmap", verdict or None) or ("noop", None)."""
    if not isinstance(stmt, dict) or len(stmt) != 1:
        raise UnsupportedRule(f"explain: unknown statement {stmt!r}")
    (key, body), = stmt.items()
    if key == "match":
        test = _match(body, table)
        return lambda pkt: ("match", test(pkt))
    if key in _NO_OPS or (key == "set" and isinstance(body, dict) and body.get("op") in ("update", "add")):
        return lambda pkt: ("noop", None)
    if key == "meter" and isinstance(body, dict) and body.get("stmt", {"counter": None}) == {"counter": None}:
        # a per-port drop counter (policy/drops.py): it decides nothing.  A full
        # meter ends the rule before its drop, and the next rule of the same
        # drop-<class> chain drops (ruleset.DROP_FULL_COMMENT): the verdict is
        # the same, only the rule that decides differs
        return lambda pkt: ("noop", None)
    if _limits(stmt):
        # the log's rate limit per port (ruleset.log_statements): over the
        # limit it ends the rule before its log; a rule with no verdict
        # (compile_rule refuses one with) decides nothing either way
        return lambda pkt: ("noop", None)
    verdict = _verdict(stmt)
    if verdict is not None:
        return lambda pkt: ("verdict", verdict)
    if key == "vmap":
        kinds, get = _left(body["key"])
        data = body["data"]
        if len(kinds) != 1 or not (isinstance(data, str) and data.startswith("@")):
            raise UnsupportedRule(f"explain: unknown verdict map {stmt!r}")

        def vmap(pkt):
            s = table.sets.get(data[1:])
            if s is None or not s.is_map:
                raise UnsupportedRule(f"explain: no map {data}")
            value = get(pkt)
            for k, v in s.elements:         # an exact key wins over an interval's (the kernel has one or the other)
                if _Value(kinds[0], k).test(value):
                    found = _verdict(v)
                    if found is None:
                        raise UnsupportedRule(f"explain: unknown verdict {v!r} in {data}")
                    return ("vmap", found)
            return ("vmap", None)
        return vmap
    raise UnsupportedRule(f"explain: unknown statement {stmt!r}")


def _limits(stmt):
    """Whether a statement is a rate limit per key: a meter (nftables 1.0.6's
    listing, and what we send) or a set update (1.1's listing) whose only
    statement is a packet rate limit."""
    (key, body), = stmt.items()
    if not isinstance(body, dict):
        return False
    if key == "meter":
        inner = [body.get("stmt")]
    elif key == "set" and body.get("op") in ("add", "update"):
        inner = body.get("stmt") if isinstance(body.get("stmt"), list) else [body.get("stmt")]
    else:
        return False
    return len(inner) == 1 and isinstance(inner[0], dict) and set(inner[0]) == {"limit"}


def compile_rule(rule, table):
    """The rule's statements as functions; UnsupportedRule if one is unknown."""
    hit = table.cache.get(id(rule))
    if hit is not None and hit[0] is rule and hit[1] == len(rule["expr"]):
        return hit[2]
    compiled = [_statement(s, table) for s in rule["expr"]]
    if any(_limits(s) for s in rule["expr"]) and \
            any(_verdict(s) is not None or "vmap" in s for s in rule["expr"]):
        # a rate limit would decide whether the verdict applies: not our shape
        raise UnsupportedRule(f"explain: a rate limit in a rule with a verdict: {rule.get('expr')!r}")
    table.cache[id(rule)] = (rule, len(rule["expr"]), compiled)
    return compiled


def check_supported(table):
    """Raise UnsupportedRule for the first rule (or set element) of `table`
    the evaluator does not know."""
    for chain in table.chains.values():
        for rule in chain.rules:
            compile_rule(rule, table)
    for s in table.sets.values():
        if s.is_map:
            for k, v in s.elements:
                _Value("ifname", k)
                if _verdict(v) is None:
                    raise UnsupportedRule(f"explain: unknown verdict {v!r} in @{s.name}")
        else:
            kinds = tuple(_SET_TYPES.get(t) for t in s.types)
            if None in kinds:
                raise UnsupportedRule(f"explain: set @{s.name} of type {' . '.join(s.types)}")
            for e in s.elements:
                _element(e, kinds)


# ------------------------------------------------------------- evaluation

@dataclass
class Step:
    """One rule a packet met."""

    chain: str
    position: int               # 1-based, in its chain
    rule: dict                  # the rule's JSON object
    matched: bool
    action: str = None          # what the rule did: accept, drop, return, jump X, goto X

    @property
    def comment(self):
        return self.rule.get("comment")

    def to_json(self):
        from .nftsyntax import rule_text
        return {"chain": self.chain, "position": self.position, "rule": rule_text(self.rule),
                "comment": self.comment, "matched": self.matched, "action": self.action}


@dataclass
class HookTrace:
    """What our table did with a packet in one hook."""

    hook: str
    packet: Packet
    steps: list = field(default_factory=list)
    verdict: str = ACCEPT
    decided_by: Step = None     # None: no rule decided (policy, or no chain of ours)

    def to_json(self):
        return {"hook": self.hook, "bridge": self.packet.bridge, "iif": self.packet.iif, "oif": self.packet.oif,
                "verdict": self.verdict, "steps": [s.to_json() for s in self.steps],
                "decided-by": None if self.decided_by is None else self.steps.index(self.decided_by)}


def evaluate(table, hook, packet):
    """Run `packet` through the base chains of `hook` in `table` as the
    kernel does; a HookTrace.  A missing table accepts (no rule of ours)."""
    trace = HookTrace(hook, packet)
    if table is None:
        return trace
    for base in table.base_chains(hook):
        verdict = _run(table, base, packet, trace)
        if verdict == DROP:
            trace.verdict = DROP
            return trace
    return trace


_DROP_CHAINS = frozenset(ruleset.drop_chain(cls) for cls in ruleset.DROP_CLASSES)


def _run(table, base, packet, trace):
    stack, chain, i, sent_by = [], base, 0, {}
    while True:
        if i >= len(chain.rules):               # end of chain: return; the base chain's policy
            if not stack:
                trace.decided_by = None if base.policy == ACCEPT else trace.decided_by
                return base.policy
            chain, i = stack.pop()
            continue
        rule = chain.rules[i]
        step = Step(chain.name, i + 1, rule, matched=True)
        trace.steps.append(step)
        verdict = None
        for fn in compile_rule(rule, table):
            kind, value = fn(packet)
            if kind == "match" and not value or kind == "vmap" and value is None:
                step.matched = False
                break
            if kind in ("verdict", "vmap"):
                verdict = value
                break
        i += 1
        if verdict is None or verdict[0] == "continue":
            continue
        what, target = verdict
        step.action = what if target is None else f"{what} {target}"
        if what in (ACCEPT, DROP):
            # a drop in a drop-<class> chain (where it is counted per port) was
            # decided by the rule that sent the frame there
            trace.decided_by = sent_by.get(chain.name, step) if what == DROP else step
            return what
        if what == "return":
            if not stack:
                return base.policy
            chain, i = stack.pop()
            continue
        if target not in table.chains:
            raise UnsupportedRule(f"explain: {what} to a chain that does not exist: {target}")
        if len(stack) >= _MAX_DEPTH:
            raise UnsupportedRule(f"explain: chains nest deeper than {_MAX_DEPTH} ({target})")
        if what == "jump":
            stack.append((chain, i))
        if target in _DROP_CHAINS:
            sent_by[target] = step
        chain, i = table.chains[target], 0


# ------------------------------------------------------------------ paths

@dataclass(frozen=True)
class Hop:
    """A frame crossing one bridge: in at `iif`, out at `oif` (None: for the
    host itself, only prerouting)."""

    node: str
    bridge: str
    iif: str
    oif: str = None


def through(table, frame, hop):
    """The HookTraces of `frame` crossing `hop` (prerouting, then forward
    unless dropped or for the host)."""
    pre = evaluate(table, "prerouting", Packet(frame, hop.bridge, hop.iif))
    if pre.verdict == DROP or hop.oif is None:
        return [pre]
    return [pre, evaluate(table, "forward", Packet(frame, hop.bridge, hop.iif, hop.oif))]


def path_verdict(tables, frame, hops):
    """(verdict, [(hop, [HookTrace])]) of a frame along hops; `tables`: node
    -> Table.  Stops at the first hop that drops it."""
    out = []
    for hop in hops:
        traces = through(tables.get(hop.node), frame, hop)
        out.append((hop, traces))
        if traces[-1].verdict == DROP:
            return DROP, out
    return ACCEPT, out
