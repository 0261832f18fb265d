"""Fake `qm` / `pct` start and stop: the hookscript part of Proxmox's guest start.

    qm start <vmid> [--migratedfrom <node>]     qm stop <vmid>
    pct start <vmid>                            pct stop <vmid>

Environment: PVE_MICROSEG_PVE_DIR (the fake /etc/pve), PVE_SIM_LOCK_DIR (where
the guest config flocks live), PVE_SIM_NODE (default: the `local` link).
"""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path


def fail(msg, code=255):
    print(msg, file=sys.stderr)
    sys.exit(code)


def main_section(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("["):
            break
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def storage_path(pve, storage):
    current, found = None, {}
    for line in (pve / "storage.cfg").read_text().splitlines():
        if line and not line[0].isspace() and ":" in line:
            current = line.split(":", 1)[1].strip()
        elif line.strip().startswith("path ") and current:
            found[current] = line.strip()[5:].strip()
    return found.get(storage)


def hookscript_path(pve, volume):
    storage, _, rest = volume.partition(":")
    vtype, _, name = rest.partition("/")
    if vtype != "snippets":
        fail(f"'{volume}' is not in the snippets directory")
    base = storage_path(pve, storage)
    if base is None:
        fail(f"storage '{storage}' does not exist or has no path")
    path = Path(base) / "snippets" / name
    if not path.exists():
        fail(f"script '{path}' does not exist")
    if not os.access(path, os.X_OK):
        fail(f"script '{path}' is not executable")
    return path


def flock(path, timeout=10):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > end:
                fail(f"can't lock file '{path}' - got timeout")
            time.sleep(0.05)


def call_hook(path, vmid, phase, env):
    r = subprocess.run([str(path), str(vmid), phase], env=env)
    if r.returncode:
        msg = f"hookscript error for {vmid} on {phase}: command '{path} {vmid} {phase}' failed: exit code {r.returncode}"
        if phase == "pre-start":
            fail(msg)
        print(msg, file=sys.stderr)


def main(tool, argv):
    pve = Path(os.environ["PVE_MICROSEG_PVE_DIR"])
    lock_dir = Path(os.environ["PVE_SIM_LOCK_DIR"])
    node = os.environ.get("PVE_SIM_NODE") or os.path.basename(os.readlink(pve / "local"))
    if len(argv) < 2 or argv[0] not in ("start", "stop") or not argv[1].isdigit():
        fail(f"usage: {tool} start|stop <vmid> [--migratedfrom <node>]", 2)
    verb, vmid = argv[0], int(argv[1])
    migrated_from = ""
    if argv[2:4] and argv[2] == "--migratedfrom" and tool == "qm":
        migrated_from = argv[3]
    sub = "qemu-server" if tool == "qm" else "lxc"
    conf = pve / "nodes" / (migrated_from or node) / sub / f"{vmid}.conf"
    if not conf.exists():
        fail(f"Configuration file 'nodes/{migrated_from or node}/{sub}/{vmid}.conf' does not exist", 2)
    lock = lock_dir / (f"lock-{vmid}.conf" if tool == "qm" else f"pve-config-{vmid}.lock")
    state = pve.parent.parent / "run/sim"
    state.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PVE_MIGRATED_FROM=migrated_from)
    # The guest config lock is held through pre-start and post-start: the API
    # runs vm_start under lock_config, and vm_start calls both hooks
    # (qemu-server QemuServer.pm vm_start_nolock; pve-container LXC.pm vm_start).
    fd = flock(lock)
    cfg = main_section(conf.read_text())
    hook = hookscript_path(pve, cfg["hookscript"]) if cfg.get("hookscript") else None
    if verb == "start":
        if hook:
            call_hook(hook, vmid, "pre-start", env)
        (state / f"{vmid}.running").write_text("running\n")
        if hook:
            call_hook(hook, vmid, "post-start", env)
        os.close(fd)
    else:
        if hook:
            call_hook(hook, vmid, "pre-stop", env)
        (state / f"{vmid}.running").unlink(missing_ok=True)
        os.close(fd)
        if hook:
            call_hook(hook, vmid, "post-stop", env)
