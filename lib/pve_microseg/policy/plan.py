"""What a full apply changes on this node (pure).

Every configured bridge gets its rules, whether or not it exists on this
node yet: rules for an absent bridge are inert, and a bridge created later
(an SDN apply, a zone extended to this node) is protected from its first
frame.  The ruleset is the same on every node.
"""

from dataclasses import dataclass

from . import ruleset


@dataclass
class Plan:
    desired: tuple                  # ManagedBridge, all configured, by name
    added: list
    removed: list
    changed: list                   # (old, new)
    unchanged: list
    absent: list                    # configured, but no such bridge on this node (yet)
    transaction: dict               # replaces the whole table

    def changes(self):
        """What changes, as [{bridge, change, field, before, after}]."""
        out = [{"bridge": b.name, "change": "added", "gateway-mac": list(b.gateway.macs),
                "gateway-ip": [str(ip) for ip in b.gateway.ips]}
               for b in self.desired if b.name in self.added]
        for old, new in self.changed:
            for name, before, after in (
                    ("gateway-mac", old.gateway.macs, new.gateway.macs),
                    ("gateway-ip", tuple(map(str, old.gateway.ips)), tuple(map(str, new.gateway.ips)))):
                if before != after:
                    out.append({"bridge": new.name, "change": "changed", "field": name,
                                "before": list(before), "after": list(after)})
        out += [{"bridge": name, "change": "removed"} for name in self.removed]
        return out


def diff(current, desired):
    """{name: ManagedBridge or None} loaded now vs the desired bridges ->
    (added, removed, changed, unchanged)."""
    want = {b.name: b for b in desired}
    added = sorted(n for n in want if n not in current)
    removed = sorted(n for n in current if n not in want)
    changed = [(current[n], want[n]) for n in sorted(want)
               if n in current and current[n] != want[n]]
    unchanged = sorted(n for n in want if n in current and current[n] == want[n])
    return added, removed, changed, unchanged


def plan(bridges, applied, present, port_bindings=(), nd_target=False, log=False):
    """The desired bridges, what is loaded now ({name: ManagedBridge or None}),
    the bridges that exist on this node and the port bindings of its guests
    -> Plan.  nd_target, log: ruleset.skeleton."""
    desired = tuple(sorted(bridges, key=lambda b: b.name))
    added, removed, changed, unchanged = diff(applied, desired)
    return Plan(desired=desired, added=added, removed=removed, changed=changed, unchanged=unchanged,
                absent=sorted(b.name for b in desired if b.name not in present),
                transaction=ruleset.full(desired, port_bindings, nd_target, log))
