"""Calls to Proxmox's API through `pvesh`, the way an administrator would make them.

Every change pve-microseg makes to cluster configuration goes through pvesh,
so Proxmox's own validation, locking and permissions apply.  This module
builds the calls, runs them with `--output-format json`, and turns failures
into PveshError with pvesh's own message.  With `dry_run`, changing calls
(set/create/delete) are only recorded: `calls` then lists exactly what would
run, ready to print.

pvesh facts this relies on: JSON output is one line, and a method returning
null prints nothing (print_api_result in proxmox/pve-common
src/PVE/CLIFormatter.pm@f665029eac78022e81810ab2e44eace57ade13fb); errors go
to stderr with a non-zero exit (usually 255); worker tasks run in the
foreground, print their log, then the UPID, and exit 0 even when the task
failed (fork_worker in src/PVE/RESTEnvironment.pm@f665029e...) --
`task_result` asks for the real outcome, `wait_tasks` waits (bounded) for
tasks that still run: GET /nodes/<node>/tasks/<upid>/status answers
`status: running|stopped` and, once stopped, `exitstatus` (read_task_status
in proxmox/pve-manager PVE/API2/Tasks.pm@14a22df35955d97dfc1af21e117dc894a29df0c9).
"""

import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from ..model.errors import PveshError
from ..parse import tasklog

CHANGING = ("set", "create", "delete")


@dataclass(frozen=True)
class Call:
    verb: str                        # get, set, create, delete
    path: str
    params: tuple = ()               # ((name, value), ...) in order; lists become repeated flags

    def argv(self, binary="pvesh"):
        out = [binary, self.verb, self.path]
        for name, value in self.params:
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                out += [f"--{name}", _text(v)]
        return out + ["--output-format", "json"]

    def __str__(self):
        return shlex.join(self.argv()[:-2])          # as an administrator would type it


def _text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclass
class Pvesh:
    binary: str = "pvesh"
    dry_run: bool = False
    env: dict = None
    calls: list = field(default_factory=list)        # every Call made or planned, in order

    def run(self, verb, path, **params):
        # names as the API spells them: policy_forward, icmp-type (pass **{"icmp-type": ...})
        call = Call(verb, path, tuple((k, v) for k, v in params.items() if v is not None))
        self.calls.append(call)
        if self.dry_run and verb in CHANGING:
            return None
        try:
            r = subprocess.run(call.argv(self.binary), capture_output=True, text=True, env=self.env)
        except OSError as e:
            raise PveshError(f"cannot run {self.binary}: {e.strerror} (is this a Proxmox VE node?)") from None
        if r.returncode != 0:
            msg = r.stderr.strip() or r.stdout.strip() or f"exit code {r.returncode}"
            raise PveshError(f"{call}: {msg}")
        out = r.stdout.strip()
        if not out:
            return None
        lines = out.splitlines()
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = lines[-1].strip()
        if isinstance(result, str) and result.startswith("UPID:"):
            # a worker task: its log, then the UPID (JSON-quoted in json mode)
            return {"upid": result, "log": lines[:-1]}
        return result

    def get(self, path, **params):
        return self.run("get", path, **params)

    def set(self, path, **params):
        return self.run("set", path, **params)

    def create(self, path, **params):
        return self.run("create", path, **params)

    def delete(self, path, **params):
        return self.run("delete", path, **params)

    def task_status(self, upid):
        """GET /nodes/<the UPID's node>/tasks/<upid>/status."""
        decoded = tasklog.decode_upid(upid)
        node = decoded.node if decoded else (upid.split(":")[1] if upid.startswith("UPID:") else "localhost")
        return self.get(f"/nodes/{node}/tasks/{upid}/status") or {}

    def task_result(self, upid):
        """(ok, exitstatus) of a finished worker task; pvesh itself exits 0 either way."""
        exitstatus = self.task_status(upid).get("exitstatus", "unknown")
        return exitstatus == "OK" or str(exitstatus).startswith("WARNINGS"), exitstatus

    def tasks(self, node, **filters):
        """GET /nodes/<node>/tasks: the node's task list, newest first."""
        return self.get(f"/nodes/{node}/tasks", **filters) or []

    def wait_tasks(self, upids, timeout, interval=1.0):
        """{upid: its last status, or the PveshError asking for it}, once every
        task has stopped or `timeout` seconds have passed, whichever is first."""
        deadline = time.monotonic() + timeout
        out, pending = {}, list(dict.fromkeys(upids))
        while True:
            for upid in pending:
                try:
                    out[upid] = self.task_status(upid)
                except PveshError as e:
                    out[upid] = e
            pending = [u for u in pending if isinstance(out[u], dict) and out[u].get("status") == "running"]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return out
            time.sleep(min(interval, left))
