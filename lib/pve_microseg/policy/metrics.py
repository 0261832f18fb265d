"""This node's state as a Prometheus textfile (pure).

`pve-microseg metrics` (flows/metrics.py) reads what `status --local`
reads (flows/status.py local_detail()) and hands it to snapshot(); render()
turns the Snapshot into the Prometheus text exposition format 0.0.4, which
node_exporter's textfile collector reads from
/var/lib/prometheus/node-exporter/*.prom.

Conventions (https://prometheus.io/docs/practices/naming/): every name
starts with `pve_microseg_`; counters end in `_total`, bytes and seconds are
base units named in the suffix; 0/1 gauges for states; `_info` gauges of
value 1 carry text as labels.  No sample carries a timestamp (node_exporter
refuses textfiles with timestamps).  A node_exporter adds `instance`; the
Proxmox node name is in pve_microseg_info{node=...}.

Labels:
  bridge   the Linux bridge a port is on now (a VLAN bridge <bridge>v<tag>
           too); for per-bridge metrics the managed bridge or VNet
  vmid, nic  the guest port's VMID and NIC (net<n>); "" (the same as no
           label to PromQL) for a port that is not a guest's (the uplink:
           a frame from another node, counted where it arrives)
  port     the port's interface name, always: two ports of one guest NIC
           (tap101i0 and fwpr101p0, when its firewall flag changes) and
           several uplinks stay distinct series
  class    the drop class (policy/ruleset.py DROP_CLASSES)
Label values may come from names the operator or a guest's owner chose
(bridge and zone names, interface names, the node's name): they are escaped
as the format says (backslash, double quote, newline), and what is not UTF-8
is shown as a backslash escape; nothing in a value can end a label or a line.

Configuration generation: the code keeps no generation counter.  What it
has is the resolved model of each bridge (what the last-good cache and each
bridge's marker in /run/pve-microseg/bridges hold) and the configuration
stamp (the newest mtime of microseg.yaml, the legacy file and the SDN
running config, which the if-up.d hook compares).  So:
  pve_microseg_config_info{digest}        a digest of the resolved model of
        every managed bridge (sha256, 16 hex digits): equal on nodes that
        resolve the same configuration, it changes exactly when a bridge's
        rules would (not for edits of comments or of unmanaged things)
  pve_microseg_config_timestamp_seconds   the configuration stamp
  pve_microseg_bridge_rules_current{bridge}  1 when the rules loaded on the
        bridge were built from the configuration as it resolves now, 0 when
        a change waits for `apply` or an ifreload
"""

import hashlib
import json
from dataclasses import dataclass

from .bindings import port_owner
from .ruleset import DROP_CLASSES

PREFIX = "pve_microseg_"

# a guest port's state (pve_microseg_guest_ports{state=...}), every one shown per bridge
PORT_STATES = ("protected", "unbound", "port_security_off", "no_rules")


@dataclass(frozen=True)
class BridgeState:
    name: str
    vnet: bool = False
    zone: str = ""
    present: bool = False
    rules: bool = False
    current: bool = None        # rules built from the configuration as it is now (None: no rules)


@dataclass(frozen=True)
class PortState:
    port: str
    bridge: str                 # the bridge it is on now
    managed: str                # the managed bridge whose rules it gets
    state: str                  # PORT_STATES


@dataclass(frozen=True)
class Snapshot:
    timestamp: float                    # when the refresh ran (seconds since the epoch)
    duration: float = 0.0               # how long it took (seconds)
    version: str = ""
    node: str = ""
    error: str = None                   # the refresh failed: up 0, and nothing else is known
    bridges: tuple = ()                 # BridgeState
    ports: tuple = ()                   # PortState of every guest port on a managed bridge here
    bindings: int = 0                   # ports with a binding loaded (bind-mac, bind-any-mac)
    drops: tuple = ()                   # policy/drops.py rows
    config_digest: str = None
    config_timestamp: float = None
    nd_target_bound: bool = None
    drop_log: bool = None               # `log: on` in microseg.yaml


def config_digest(bridges, log=False):
    """16 hex digits of sha256 over the resolved model of these bridges
    (ManagedBridge), without where each was read from, and (only when on,
    so a digest of before `log:` existed stays the same) `log: on`."""
    doc = sorted((dict(b.to_json(), source=None) for b in bridges), key=lambda d: d["bridge"])
    if log:
        doc = {"bridges": doc, "log": True}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def snapshot(timestamp, duration, version, status_data, detail, applied, stamp_ns):
    """The Snapshot of a refresh: status_data/detail from flows/status.py
    local_detail() (detail None: nftables could not be read), applied: the
    bridges' markers ({name: ManagedBridge or None}, edges/state.py),
    stamp_ns: the configuration stamp (ns; 0 when no file exists)."""
    node = status_data.get("node") or ""
    if detail is None or "error" in status_data:
        return Snapshot(timestamp, duration, version, node, error=status_data.get("error") or "unknown error")
    cfg, local = detail["config"], status_data["bridges"]
    bridges = tuple(BridgeState(b.name, b.vnet, b.zone or "", local[b.name]["present"], local[b.name]["rules"],
                                (applied.get(b.name) == b) if local[b.name]["rules"] else None)
                    for b in cfg.bridges)
    unbound = {u["port"] for u in status_data.get("unbound-ports") or ()}
    ports = []
    for name, b, names in detail["ports"]:
        for p in names:
            if not local[b.name]["rules"]:
                st = "no_rules"
            elif b.port_security == "off":
                st = "port_security_off"
            else:
                st = "unbound" if p in unbound else "protected"
            ports.append(PortState(p, name, b.name, st))
    return Snapshot(timestamp, duration, version, node, bridges=bridges, ports=tuple(ports),
                    bindings=len(detail["bound"]), drops=tuple(status_data.get("drops") or ()),
                    config_digest=config_digest(cfg.bridges, cfg.log), drop_log=cfg.log,
                    config_timestamp=stamp_ns / 1e9 if stamp_ns else None,
                    nd_target_bound=status_data.get("nd-target-bound"))


# ------------------------------------------------------------------ format

def _text(value):
    """Any value as text that encodes to UTF-8 (a lone surrogate from an
    undecodable interface name becomes its backslash escape)."""
    text = "" if value is None else str(value)
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


_PLAIN = frozenset('\\"\n')


def label_value(value):
    r"""A label value escaped as the exposition format says: \ -> \\, " -> \", newline -> \n."""
    text = _text(value)
    if _PLAIN.isdisjoint(text):
        return text
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def help_text(text):
    r"""HELP text: \ -> \\, newline -> \n."""
    return _text(text).replace("\\", "\\\\").replace("\n", "\\n")


def comment(text):
    """One comment line's text: no line break, nothing that is not UTF-8."""
    return " ".join(_text(text).split())


def number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Family:
    def __init__(self, name, kind, helptext):
        self.name, self.kind, self.help, self.samples = PREFIX + name, kind, helptext, {}

    def add(self, value, **labels):
        # the label set as written (escaped once); one series per label set, whatever the input says
        key = ",".join(f'{n}="{label_value(v)}"' for n, v in labels.items())
        if key not in self.samples:
            self.samples[key] = value

    def lines(self):
        yield f"# HELP {self.name} {help_text(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        for key in sorted(self.samples):
            yield f"{self.name}{{{key}}} {number(self.samples[key])}" if key else \
                f"{self.name} {number(self.samples[key])}"


def _owner(port):
    owner = port_owner(port)
    return (str(owner[0]), f"net{owner[1]}") if owner else ("", "")


def families(snap):
    """The metric families of a Snapshot, in the order they are written."""
    fam = {}

    def f(name, kind, helptext):
        fam[name] = _Family(name, kind, helptext)
        return fam[name]

    f("up", "gauge", "1 if the last refresh read this node's state, 0 if it failed "
                     "(then only this, the timestamp and the info are written)").add(0 if snap.error else 1)
    f("textfile_timestamp_seconds", "gauge", "When the textfile was last refreshed, "
                                              "seconds since the epoch").add(float(snap.timestamp))
    f("refresh_duration_seconds", "gauge", "How long the last refresh took").add(float(snap.duration))
    f("info", "gauge", "pve-microseg on this node: its Proxmox node name and version").add(
        1, node=snap.node, version=snap.version)
    if snap.error:
        return fam
    f("config_info", "gauge", "Digest of the resolved configuration of every managed bridge "
                              "(equal on nodes that resolve the same)").add(1, digest=snap.config_digest or "")
    if snap.config_timestamp is not None:
        f("config_timestamp_seconds", "gauge", "Newest modification time of microseg.yaml, "
                                              "L2-microsegmentation.conf and the SDN running config"
          ).add(float(snap.config_timestamp))
    info = f("bridge_info", "gauge", "A managed bridge: kind vnet (SDN VNet, with its zone) or bridge")
    present = f("bridge_present", "gauge", "1 if the managed bridge exists on this node")
    loaded = f("bridge_rules_loaded", "gauge", "1 if the managed bridge's L2 rules are loaded on this node")
    unprotected = f("bridge_unprotected", "gauge", "1 if the managed bridge exists on this node without its rules")
    current = f("bridge_rules_current", "gauge", "1 if the loaded rules were built from the configuration as it "
                                                  "is now, 0 if a change waits for apply or ifreload")
    for b in snap.bridges:
        info.add(1, bridge=b.name, kind="vnet" if b.vnet else "bridge", zone=b.zone or "")
        present.add(b.present, bridge=b.name)
        loaded.add(b.rules, bridge=b.name)
        unprotected.add(b.present and not b.rules, bridge=b.name)
        if b.rules and b.current is not None:
            current.add(b.current, bridge=b.name)
    ports = f("guest_ports", "gauge", "Guest ports on a managed bridge of this node, by state: protected (rules "
                                      "and a binding), unbound (sends nothing), port_security_off, no_rules")
    counts = {}
    for p in snap.ports:
        counts.setdefault(p.bridge, dict.fromkeys(PORT_STATES, 0))[p.state] += 1
    for bridge, by_state in counts.items():
        for st, n in by_state.items():
            ports.add(n, bridge=bridge, state=st)
    unbound = f("guest_port_unbound", "gauge", "A guest port without a port-security binding: it sends nothing")
    for p in snap.ports:
        if p.state == "unbound":
            vmid, nic = _owner(p.port)
            unbound.add(1, vmid=vmid, nic=nic, port=p.port, bridge=p.bridge)
    f("port_bindings", "gauge", "Ports with a port-security binding loaded in the kernel").add(snap.bindings)
    if snap.nd_target_bound is not None:
        f("nd_target_bound", "gauge", "1 if a neighbour advertisement's target is bound to the port "
                                      "(nftables 1.1 or later)").add(snap.nd_target_bound)
    if snap.drop_log is not None:
        f("drop_log_enabled", "gauge", "1 if microseg.yaml says log: on (each drop class logs a kernel line "
                                       "per port at most once a minute)").add(snap.drop_log)
    packets = f("drops_total", "counter", "Frames the rules dropped, per input port and class, "
                                          "since the rules were loaded")
    nbytes = f("drop_bytes_total", "counter", "Bytes of the frames the rules dropped, per input port and class")
    for row in snap.drops:
        if row.get("class") not in DROP_CLASSES:
            continue
        labels = {"vmid": "" if row.get("vmid") is None else str(row["vmid"]), "nic": row.get("nic") or "",
                  "port": row["port"], "bridge": row.get("bridge") or "", "class": row["class"]}
        packets.add(row["packets"], **labels)
        nbytes.add(row["bytes"], **labels)
    return fam


def render(snap):
    """The textfile of a Snapshot (text exposition format 0.0.4)."""
    lines = []
    if snap.error:
        lines.append(f"# refresh failed: {comment(snap.error)}")
    for family in families(snap).values():
        lines.extend(family.lines())
    return "\n".join(lines) + "\n"
