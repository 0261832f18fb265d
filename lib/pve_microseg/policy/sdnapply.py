"""What became of an SDN apply on each node (pure).

The SDN apply's own task (`reloadnetworkall`) only starts, node after node,
each node's network reload, and ends OK whatever those did (see
parse/tasklog.py).  The reload itself is the node's `srvreload` task
(reload_network_config in proxmox/pve-manager
PVE/API2/Network.pm@14a22df35955d97dfc1af21e117dc894a29df0c9: it generates
the SDN interfaces and runs `ifreload -a`; a failing ifreload ends it with
`TASK ERROR: command 'ifreload -a' failed: exit code 1`), listed by the
node's task list (GET /nodes/<node>/tasks; `source=all` also lists a task
that has not been archived yet, shown as RUNNING) and read by
GET /nodes/<node>/tasks/<upid>/status: `status` running|stopped,
`exitstatus` OK | WARNINGS: <n> | <error> | unexpected status
(proxmox/pve-manager PVE/API2/Tasks.pm@14a22df35955d97dfc1af21e117dc894a29df0c9).

Each node's outcome is one of:
  ok       its srvreload task ended OK (or with warnings);
  failed   its srvreload task ended with an error: the network of that node
           was not (fully) reloaded;
  unknown  no srvreload task of this apply was found, the node is offline or
           could not be asked, or its task was still running at the timeout.
"""

from dataclasses import dataclass

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"
TASK_TYPE = "srvreload"
# a node's srvreload starts after the apply's task did, on that node's clock:
# allow this much clock difference between the nodes (seconds)
CLOCK_SLACK = 2


@dataclass(frozen=True)
class NodeReload:
    node: str
    outcome: str                  # OK, FAILED or UNKNOWN
    detail: str                   # one line for the administrator
    upid: str = None              # the node's srvreload task, when one was found
    exitstatus: str = None        # that task's exitstatus, when it has stopped

    def to_json(self):
        return {"node": self.node, "outcome": self.outcome, "upid": self.upid,
                "exitstatus": self.exitstatus, "detail": self.detail}

    def text(self):
        return f"{self.node}: {self.detail}"


def log_command(node, upid):
    return f"pvesh get /nodes/{node}/tasks/{upid}/log"


def since(apply_starttime):
    """The `since` of the task list query for an apply whose task started then."""
    return apply_starttime - CLOCK_SLACK


def pick(tasks, apply_starttime):
    """(the node's srvreload task of this apply or None, how many srvreload
    tasks started on the node since the apply's task did): of those started
    since the apply's task (less CLOCK_SLACK), the newest."""
    found = [t for t in tasks or () if isinstance(t, dict) and t.get("type") == TASK_TYPE
             and isinstance(t.get("starttime"), int) and t["starttime"] >= since(apply_starttime)
             and t.get("upid")]
    if not found:
        return None, 0
    # the list comes newest first; max() keeps the first of equal start times
    return (max(found, key=lambda t: t["starttime"]),
            sum(1 for t in found if t["starttime"] >= apply_starttime))


def _and_call(call_failed):
    return f" (the apply's call to the node failed: {call_failed})" if call_failed else ""


def judge(node, upid, status, timeout, others=0, call_failed=None):
    """The outcome of a node whose srvreload task was found; `status` is
    what .../tasks/<upid>/status answered last."""
    extra = _and_call(call_failed)
    if others > 1:
        extra += f" ({others} srvreload tasks started on {node} since the apply began; the newest is reported)"
    if status.get("status") == "running":
        return NodeReload(node, UNKNOWN, f"network reload still running after {timeout:g} s (task {upid}): "
                          f"its outcome: pvesh get /nodes/{node}/tasks/{upid}/status{extra}", upid)
    exitstatus = str(status.get("exitstatus", "unexpected status"))
    if exitstatus == "OK":
        return NodeReload(node, OK, f"network reloaded (task {upid}){extra}", upid, exitstatus)
    if exitstatus.startswith("WARNINGS: "):
        return NodeReload(node, OK, f"network reloaded with {exitstatus}: read its log: "
                          f"{log_command(node, upid)}{extra}", upid, exitstatus)
    return NodeReload(node, FAILED, f"network reload FAILED: {exitstatus}; read its log: "
                      f"{log_command(node, upid)}{extra}", upid, exitstatus)


def offline(node, call_failed=None):
    return NodeReload(node, UNKNOWN, "network reload outcome unknown: the node is offline; reload its network "
                      f"once it is back (pvesh set /nodes/{node}/network){_and_call(call_failed)}")


def unreachable(node, error, call_failed=None):
    return NodeReload(node, UNKNOWN, f"network reload outcome unknown: cannot read its task list ({error})"
                      f"{_and_call(call_failed)}")


def status_unreadable(node, upid, error):
    return NodeReload(node, UNKNOWN, f"network reload outcome unknown: cannot read the status of task {upid} "
                      f"({error})", upid)


def not_found(node, apply_starttime, call_failed=None):
    why = (f"the apply's call to the node failed: {call_failed}" if call_failed else
           f"no {TASK_TYPE} task on {node} since {since(apply_starttime)} (UNIX time; is its clock right?)")
    return NodeReload(node, UNKNOWN, f"network reload outcome unknown: {why}; reload it with "
                      f"pvesh set /nodes/{node}/network")



def reload_again(failed):
    """The warning that closes a run in which these nodes' reload failed."""
    return (f"the network reload failed on {', '.join(r.node for r in failed)}: fix the cause (the task log "
            "named above), then reload: " + "; ".join(f"pvesh set /nodes/{r.node}/network" for r in failed))
