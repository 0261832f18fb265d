"""Proxmox worker tasks: UPIDs, and the log of the SDN apply's task (pure).

A UPID names a worker task (PVE::UPID encode/decode, proxmox/pve-common
src/PVE/UPID.pm@f665029eac78022e81810ab2e44eace57ade13fb):

    UPID:<node>:<pid 8 hex>:<pstart 8-9 hex>:<starttime 8 hex>:<type>:<id>:<user>:

`pvesh set /cluster/sdn` (reload in proxmox/pve-network
src/PVE/API2/Network/SDN.pm@ecf98c5d8f12fac9d61f3da27376aaab0ab598dc) runs
the task `reloadnetworkall`, which for each node of the cluster's node list in
turn (in no fixed order) logs

    <node>: reloading network config

and runs `pvesh set /nodes/<node>/network --regenerate-frr 0|1`: that call
starts the node's own `srvreload` task (ifreload -a), whose output it reads
only for the UPID.  When the call fails (an unreachable node, ...), the
call's stderr and then Perl's `warn` of the error follow in the log, e.g.

    proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host
    command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255

and the task goes on with the next node (`warn $@ if $@`): it ends `TASK OK`
whatever happened on the nodes.
"""

import re
from dataclasses import dataclass

_UPID = re.compile(r"UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
                   r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s/]+):"
                   r"(?P<id>[^:\s/]*):(?P<user>[^:\s/]+):")
_RELOADING = re.compile(r"(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-.]*[a-zA-Z0-9])?): reloading network config")
# the die of run_command (proxmox/pve-common src/PVE/Cmd.pm), or upid_decode's when no UPID came back
_FAILED = re.compile(r"command '.*' failed: .*|unable to parse worker upid.*")
_TASK_END = re.compile(r"TASK (OK|ERROR: .*|WARNINGS: \d+)")


@dataclass(frozen=True)
class Upid:
    text: str
    node: str
    pid: int
    pstart: int
    starttime: int            # UNIX epoch, on the node's clock
    type: str
    id: str
    user: str


def decode_upid(text):
    """The parts of a UPID, or None when `text` is not one."""
    m = _UPID.fullmatch(str(text).strip())
    if not m:
        return None
    return Upid(m.group(0), m.group("node"), int(m.group("pid"), 16), int(m.group("pstart"), 16),
                int(m.group("starttime"), 16), m.group("type"), m.group("id"), m.group("user"))


def reload_sections(lines):
    """{node: [the log lines that followed its `reloading network config`]},
    in the order the task went through the nodes."""
    out, current = {}, None
    for raw in lines:
        line = str(raw).rstrip()
        m = _RELOADING.fullmatch(line)
        if m:
            current = out.setdefault(m.group("node"), [])
        elif _TASK_END.fullmatch(line):
            current = None
        elif current is not None and line:
            current.append(line)
    return out


def call_failure(section):
    """What went wrong with the call to one node, from its section of the
    log (its lines joined), or None when the call did not fail."""
    if any(_FAILED.fullmatch(line) for line in section):
        return "; ".join(section)
    return None
