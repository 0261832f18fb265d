"""pvesh client: the calls it builds, dry-run, errors, worker task output."""

import pytest

from pve_microseg.edges.pvesh import Call, Pvesh, PveshError


@pytest.fixture
def fake(tmp_path):
    """A stand-in pvesh that logs its argv and answers from FAKE_* files."""
    log = tmp_path / "argv.log"
    script = tmp_path / "pvesh"
    script.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> {log}
case "$2" in
  /fail) echo "no such IPSet 'x'" >&2; exit 255;;
  /null) exit 0;;
  /task) echo "starting"; echo "TASK ERROR: boom"; echo "UPID:pve1:0000A:0001:6000:reloadnetworkall::root@pam:"; exit 0;;
  /nodes/pve1/tasks/*) echo '{{"exitstatus":"boom","status":"stopped"}}';;
  *) echo '{{"a":1}}';;
esac
""")
    script.chmod(0o755)
    return Pvesh(binary=str(script)), log


def test_call_line_is_what_an_administrator_types():
    c = Call("set", "/cluster/firewall/options", (("enable", True), ("delete", ["a", "b"])))
    assert str(c) == "pvesh set /cluster/firewall/options --enable 1 --delete a --delete b"
    assert c.argv()[-2:] == ["--output-format", "json"]


def test_get_parses_json_and_null_is_none(fake):
    p, log = fake
    assert p.get("/cluster/resources", type="vm") == {"a": 1}
    assert p.get("/null") is None
    assert "get /cluster/resources --type vm --output-format json" in log.read_text()


def test_errors_carry_pvesh_message(fake):
    p, _ = fake
    with pytest.raises(PveshError) as e:
        p.get("/fail")
    assert "no such IPSet 'x'" in str(e.value) and "pvesh get /fail" in str(e.value)


def test_dry_run_records_changes_without_running_them(fake):
    p, log = fake
    p.dry_run = True
    assert p.set("/cluster/firewall/options", enable=1) is None
    assert p.get("/cluster/resources") == {"a": 1}              # reads still run
    assert [str(c) for c in p.calls] == ["pvesh set /cluster/firewall/options --enable 1",
                                         "pvesh get /cluster/resources"]
    assert "set" not in log.read_text()


def test_worker_task_reports_its_real_outcome(fake):
    p, _ = fake
    out = p.set("/task")
    assert out["upid"].startswith("UPID:pve1:") and "TASK ERROR: boom" in out["log"]
    assert p.task_result(out["upid"]) == (False, "boom")


def test_missing_binary():
    with pytest.raises(PveshError) as e:
        Pvesh(binary="/nonexistent/pvesh").get("/x")
    assert "is this a Proxmox VE node" in str(e.value)


def test_wait_tasks_polls_until_stopped_and_gives_up_at_the_timeout(tmp_path):
    """A task's status is asked again while it runs, at most `timeout` seconds
    in all; a status pvesh cannot read is handed back as its error."""
    count = tmp_path / "count"
    script = tmp_path / "pvesh"
    script.write_text(f"""#!/bin/sh
case "$2" in
  */UPID:pve1:*) n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}
      [ $n -ge 3 ] && echo '{{"status":"stopped","exitstatus":"OK"}}' || echo '{{"status":"running"}}';;
  */UPID:pve2:*) echo '{{"status":"running"}}';;
  *) echo "proxy handler failed: ssh: connect to host 192.0.2.13 port 22: No route to host" >&2; exit 255;;
esac
""")
    script.chmod(0o755)
    p = Pvesh(binary=str(script))
    one = "UPID:pve1:00000001:00000002:00000003:srvreload:networking:root@pam:"
    two = "UPID:pve2:00000001:00000002:00000003:srvreload:networking:root@pam:"
    three = "UPID:pve3:00000001:00000002:00000003:srvreload:networking:root@pam:"
    out = p.wait_tasks([one, two, three], timeout=1.5, interval=0.1)
    assert out[one] == {"status": "stopped", "exitstatus": "OK"} and count.read_text().strip() == "3"
    assert out[two] == {"status": "running"}                      # still running at the timeout
    assert isinstance(out[three], PveshError) and "No route to host" in str(out[three])
    asked = [str(c) for c in p.calls]
    assert asked.count(f"pvesh get /nodes/pve3/tasks/{three}/status") == 1     # an error is not asked again
    assert f"pvesh get /nodes/pve2/tasks/{two}/status" in asked
    assert p.wait_tasks([], timeout=5) == {}


def test_tasks_lists_a_nodes_tasks_with_filters(fake):
    p, log = fake
    assert p.tasks("pve2", typefilter="srvreload", since=100, source="all") == {"a": 1}
    assert ("get /nodes/pve2/tasks --typefilter srvreload --since 100 --source all --output-format json"
            in log.read_text())
