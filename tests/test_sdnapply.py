"""What became of an SDN apply on each node: the apply task's log, UPIDs, and
the verdict per node (parse/tasklog.py, policy/sdnapply.py; pure)."""

import pytest

from pve_microseg.parse import tasklog, vmlist
from pve_microseg.policy import sdnapply

APPLY = "UPID:pve1:00012A3F:0A1B2C3D:66F0A000:reloadnetworkall::root@pam:"
T0 = 0x66F0A000
PVE2 = "UPID:pve2:00000F00:100000001:66F0A002:srvreload:networking:root@pam:"

# the shape reload in pve-network src/PVE/API2/Network/SDN.pm logs: a line per
# node, the failed call's stderr and run_command's die warned, then TASK OK
LOG = ["pve3: reloading network config",
       "pve1: reloading network config",
       "pve2: reloading network config",
       "proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host",
       "command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255",
       "TASK OK"]


def test_upids_decode_as_proxmox_encodes_them():
    u = tasklog.decode_upid(PVE2)
    assert (u.node, u.pid, u.pstart, u.starttime, u.type, u.id, u.user) == (
        "pve2", 0xF00, 0x100000001, 0x66F0A002, "srvreload", "networking", "root@pam")
    assert tasklog.decode_upid(f'  {APPLY}\n').text == APPLY
    for bad in ("UPID:pve1:0000A:0001:6000:x::root@pam:",                 # short fields
                "UPID:pve1:00012A3F:0A1B2C3D:66F0A000:a/b::root@pam:",     # '/' is not allowed
                APPLY[:-1], "", "OK"):
        assert tasklog.decode_upid(bad) is None, bad


def test_the_apply_log_is_split_per_node_and_a_failed_call_found():
    sections = tasklog.reload_sections(LOG)
    assert list(sections) == ["pve3", "pve1", "pve2"]                     # the task's order
    assert sections["pve1"] == [] and sections["pve3"] == []
    assert tasklog.call_failure(sections["pve1"]) is None
    assert tasklog.call_failure(sections["pve2"]) == (
        "proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host; "
        "command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255")
    # no UPID came back from the call: upid_decode's die is warned
    assert tasklog.call_failure(["unable to parse worker upid ''"]) == "unable to parse worker upid ''"
    # stderr of a call that did not fail is no failure
    assert tasklog.call_failure(["some warning"]) is None
    # a task that failed before any node (no quorum) has no sections
    assert tasklog.reload_sections(["TASK ERROR: cluster not ready - no quorum?"]) == {}


def task(upid, starttime, type_="srvreload"):
    return {"upid": upid, "starttime": starttime, "type": type_, "node": "pve2"}


def test_the_newest_srvreload_since_the_apply_is_picked():
    old = task("UPID:old", T0 - 60)
    skewed = task("UPID:skewed", T0 - sdnapply.CLOCK_SLACK)                # the node's clock is behind
    new = task("UPID:new", T0 + 3)
    other = task("UPID:other", T0 + 5, "vzdump")
    assert sdnapply.since(T0) == T0 - sdnapply.CLOCK_SLACK
    assert sdnapply.pick([other, new, skewed, old], T0) == (new, 1)       # skewed may be an earlier one
    assert sdnapply.pick([other, skewed, old], T0) == (skewed, 0)
    newer = task("UPID:newer", T0 + 9)
    assert sdnapply.pick([newer, other, new, skewed, old], T0) == (newer, 2)
    assert sdnapply.pick([other, old], T0) == (None, 0)
    assert sdnapply.pick([], T0) == (None, 0) and sdnapply.pick(None, T0) == (None, 0)
    first, second = task("UPID:first", T0 + 1), task("UPID:second", T0 + 1)
    assert sdnapply.pick([first, second], T0)[0] is first                  # the list is newest first


@pytest.mark.parametrize("status, outcome, words", [
    ({"status": "stopped", "exitstatus": "OK"}, "ok", f"network reloaded (task {PVE2})"),
    ({"status": "stopped", "exitstatus": "WARNINGS: 2"}, "ok",
     f"network reloaded with WARNINGS: 2: read its log: pvesh get /nodes/pve2/tasks/{PVE2}/log"),
    ({"status": "stopped", "exitstatus": "command 'ifreload -a' failed: exit code 1"}, "failed",
     "network reload FAILED: command 'ifreload -a' failed: exit code 1; read its log: "
     f"pvesh get /nodes/pve2/tasks/{PVE2}/log"),
    ({"status": "stopped", "exitstatus": "unexpected status"}, "failed",
     "network reload FAILED: unexpected status; read its log"),
    ({"status": "running"}, "unknown",
     f"network reload still running after 2.5 s (task {PVE2}): its outcome: "
     f"pvesh get /nodes/pve2/tasks/{PVE2}/status"),
])
def test_a_found_task_is_judged_by_its_status(status, outcome, words):
    r = sdnapply.judge("pve2", PVE2, status, 2.5)
    assert r.outcome == outcome and r.detail.startswith(words), r.detail
    assert r.upid == PVE2 and r.exitstatus == status.get("exitstatus")
    assert r.to_json() == {"node": "pve2", "outcome": outcome, "upid": PVE2,
                           "exitstatus": status.get("exitstatus"), "detail": r.detail}
    assert r.text() == f"pve2: {r.detail}"


def test_a_failed_call_and_several_tasks_are_mentioned():
    r = sdnapply.judge("pve2", PVE2, {"status": "stopped", "exitstatus": "OK"}, 30, others=2,
                       call_failed="proxy handler failed: Connection to pve2 closed by remote host.")
    assert r.outcome == "ok"
    assert "(the apply's call to the node failed: proxy handler failed: Connection to pve2 closed" in r.detail
    assert "(2 srvreload tasks started on pve2 since the apply began; the newest is reported)" in r.detail


def test_what_cannot_be_read_is_unknown_and_says_why():
    off = sdnapply.offline("pve2", "proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host")
    assert off.outcome == "unknown" and off.upid is None
    assert off.detail.startswith("network reload outcome unknown: the node is offline; reload its network once "
                                 "it is back (pvesh set /nodes/pve2/network) (the apply's call to the node failed: "
                                 "proxy handler failed: ssh:")
    gone = sdnapply.unreachable("pve2", "pvesh get /nodes/pve2/tasks: proxy handler failed: ssh: timeout")
    assert gone.outcome == "unknown" and "cannot read its task list (pvesh get /nodes/pve2/tasks" in gone.detail
    none = sdnapply.not_found("pve2", T0)
    assert none.outcome == "unknown" and f"no srvreload task on pve2 since {T0 - 2}" in none.detail
    assert "pvesh set /nodes/pve2/network" in none.detail
    failed_call = sdnapply.not_found("pve2", T0, "command 'pvesh set /nodes/pve2/network' failed: exit code 255")
    assert "the apply's call to the node failed: command 'pvesh set" in failed_call.detail
    lost = sdnapply.status_unreadable("pve2", PVE2, "no such task")
    assert lost.outcome == "unknown" and lost.upid == PVE2 and "no such task" in lost.detail


def test_a_failed_run_says_how_to_reload_each_node():
    failed = [sdnapply.NodeReload("pve2", "failed", "x"), sdnapply.NodeReload("pve3", "failed", "y")]
    assert sdnapply.reload_again(failed) == (
        "the network reload failed on pve2, pve3: fix the cause (the task log named above), then reload: "
        "pvesh set /nodes/pve2/network; pvesh set /nodes/pve3/network")


def test_members_say_which_nodes_are_offline():
    text = ('{"nodename": "pve1", "version": 5, "nodelist": {"pve1": {"id": 1, "online": 1, "ip": "192.0.2.11"}, '
            '"pve2": {"id": 2, "online": 0, "ip": "192.0.2.12"}, "pve3": {"id": 3, "ip": "192.0.2.13"}}}')
    assert vmlist.parse_members_online(text) == {"pve1": True, "pve2": False}      # pve3 does not say
    assert vmlist.parse_members_online('{"nodename": "pve1", "version": 1}') == {}   # not clustered
    assert vmlist.parse_members_online("garbage") == {}
