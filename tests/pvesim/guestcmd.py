"""Fake `qm` / `pct` / `vzdump`: the hookscript part of Proxmox's guest start, stop and backup.

    qm start <vmid> [--migratedfrom <node>] [--skiplock]     pct start <vmid>
    qm stop|shutdown <vmid> [--skiplock]                     pct stop <vmid>
    qm resume <vmid>
    vzdump <vmid> [--mode snapshot|stop]                     (VMs only)

Modelled on proxmox/qemu-server src/PVE/QemuServer.pm (vm_start,
vm_start_nolock, _do_vm_stop) and src/PVE/QemuServer/RunState.pm (vm_resume)
@e6352be67f70042a7433a3a3c712b36d02f9f7cb, src/PVE/VZDump/QemuServer.pm at
the same commit and proxmox/pve-manager PVE/VZDump.pm (exec_backup_task)
@14a22df35955d97dfc1af21e117dc894a29df0c9:

* `qm start`: under the guest config flock; a VM whose config has `lock:
  backup` and whose QEMU runs is resumed instead (no hookscript); any other
  config lock refuses the start ("VM is locked (<lock>)") unless --skiplock;
  pre-start, then QEMU (its tap devices appear, up), then post-start.
* `qm resume`: QEMU paused -> running, no hookscript; the backup lock is no
  obstacle.
* `vzdump`: sets `lock: backup`; a running VM in stop mode is shut down
  (pre-stop, post-stop); a VM not running is started paused (`paused`,
  `skiplock`: pre-start, QEMU in `prelaunch`, post-start) -- a pre-start
  failure fails the backup; a VM that was running is resumed (`cont`) once
  the job runs; the command in PVE_SIM_DURING_BACKUP runs while the backup
  does; a VM started for the backup that is still in `prelaunch` is stopped
  again, otherwise left running; the lock is removed; a VM that was running
  and is not is started again (`qm start --skiplock`, no lock any more).

Environment: PVE_MICROSEG_PVE_DIR (the fake /etc/pve), PVE_SIM_LOCK_DIR (where
the guest config flocks live), PVE_MICROSEG_SYS_CLASS_NET (where tap devices
appear; unset: none are made), PVE_SIM_NODE (default: the `local` link).
"""

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


class Fail(Exception):
    def __init__(self, msg, code=255):
        super().__init__(msg)
        self.code = code


def fail(msg, code=255):
    raise Fail(msg, code)


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


def _flock(path, timeout=10):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > end:
                os.close(fd)
                fail(f"can't lock file '{path}' - got timeout")
            time.sleep(0.05)


def flock(path, timeout=10):
    """An fd holding the flock (tests/pvesim/pvesh.py); exits as Proxmox does on a timeout."""
    try:
        return _flock(path, timeout)
    except Fail as e:
        print(e, file=sys.stderr)
        sys.exit(e.code)


class Flock:
    def __init__(self, path, timeout=10):
        self.path, self.timeout = path, timeout

    def __enter__(self):
        self.fd = _flock(self.path, self.timeout)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


class Guest:
    def __init__(self, tool, vmid, migrated_from=""):
        self.tool, self.vmid = tool, vmid
        self.pve = Path(os.environ["PVE_MICROSEG_PVE_DIR"])
        node = os.environ.get("PVE_SIM_NODE") or os.path.basename(os.readlink(self.pve / "local"))
        self.sub = "qemu-server" if tool in ("qm", "vzdump") else "lxc"
        self.node = migrated_from or node
        self.conf = self.pve / "nodes" / self.node / self.sub / f"{vmid}.conf"
        if not self.conf.exists():
            fail(f"Configuration file 'nodes/{self.node}/{self.sub}/{vmid}.conf' does not exist", 2)
        lock_dir = Path(os.environ["PVE_SIM_LOCK_DIR"])
        self.flock = lock_dir / (f"lock-{vmid}.conf" if self.sub == "qemu-server" else f"pve-config-{vmid}.lock")
        self.state_dir = self.pve.parent.parent / "run/sim"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # unset on a real kernel (the dataplane tier's containers): no fake taps
        net = os.environ.get("PVE_MICROSEG_SYS_CLASS_NET")
        self.sys_class_net = Path(net) if net else None
        self.env = dict(os.environ, PVE_MIGRATED_FROM=migrated_from)
        self.kind = "VM" if self.sub == "qemu-server" else "CT"

    # -- config and state

    def config(self):
        return main_section(self.conf.read_text())

    def set_lock(self, lock):
        """PVE::AbstractConfig set_lock / remove_lock: the `lock:` line of the main section."""
        lines = self.conf.read_text().splitlines(keepends=True)
        end = next((i for i, l in enumerate(lines) if l.startswith("[")), len(lines))
        main = [l for l in lines[:end] if not l.startswith("lock:")]
        if lock:
            main.append(f"lock: {lock}\n")
        self.conf.write_text("".join(main + lines[end:]))

    @property
    def state_file(self):
        return self.state_dir / f"{self.vmid}.running"

    def state(self):
        """None (no QEMU), 'running' or 'prelaunch' (started paused)."""
        return self.state_file.read_text().strip() if self.state_file.exists() else None

    def set_state(self, state):
        if state is None:
            self.state_file.unlink(missing_ok=True)
        else:
            self.state_file.write_text(state + "\n")

    def taps(self, cfg, up):
        """QEMU's netdevs: pve-bridge creates tap<vmid>i<n> up; they go with the process."""
        if self.sub != "qemu-server" or self.sys_class_net is None:
            return
        for key in cfg:
            if key.startswith("net") and key[3:].isdigit():
                dev = self.sys_class_net / f"tap{self.vmid}i{key[3:]}"
                if up:
                    dev.mkdir(parents=True, exist_ok=True)
                    (dev / "flags").write_text("0x1003\n")
                else:
                    shutil.rmtree(dev, ignore_errors=True)

    def hook(self, cfg, phase):
        if not cfg.get("hookscript"):
            return
        path = hookscript_path(self.pve, cfg["hookscript"])
        r = subprocess.run([str(path), str(self.vmid), phase], env=self.env)
        if r.returncode:
            msg = (f"hookscript error for {self.vmid} on {phase}: command '{path} {self.vmid} {phase}' "
                   f"failed: exit code {r.returncode}")
            if phase == "pre-start":
                fail(msg)
            print(msg, file=sys.stderr)

    # -- commands

    def start(self, skiplock=False, paused=False):
        # The guest config lock is held through pre-start and post-start: the API
        # runs vm_start under lock_config, and vm_start calls both hooks
        # (qemu-server QemuServer.pm vm_start_nolock; pve-container LXC.pm vm_start).
        with Flock(self.flock):
            cfg = self.config()
            if self.sub == "qemu-server" and cfg.get("lock") == "backup" and self.state():
                self.resume_locked(cfg)        # "a backup is currently running, attempt to start
                return                         # the guest in the existing QEMU instance"
            if cfg.get("lock") and not skiplock:
                fail(f"{self.kind} is locked ({cfg['lock']})")
            if self.state():
                fail(f"{self.kind} {self.vmid} already running")
            self.hook(cfg, "pre-start")
            self.taps(cfg, up=True)
            self.set_state("prelaunch" if paused else "running")
            self.hook(cfg, "post-start")

    def resume_locked(self, cfg):
        if self.state() == "running":
            return
        if cfg.get("lock") and cfg["lock"] != "backup":
            fail(f"{self.kind} is locked ({cfg['lock']})")
        self.set_state("running")             # QMP 'cont': no hookscript

    def resume(self):
        with Flock(self.flock):
            if not self.state():
                fail(f"{self.kind} {self.vmid} not running")
            self.resume_locked(self.config())

    def stop(self, skiplock=False):
        with Flock(self.flock):
            cfg = self.config()
            if not self.state():
                return
            if cfg.get("lock") and not skiplock:
                fail(f"{self.kind} is locked ({cfg['lock']})")
            self.hook(cfg, "pre-stop")
            self.set_state(None)
            self.taps(cfg, up=False)
        self.hook(cfg, "post-stop")

    def vzdump(self, mode="snapshot"):
        print(f"INFO: Starting Backup of VM {self.vmid} (qemu)")
        running = self.state() is not None
        print(f"INFO: status = {'running' if running else 'stopped'}")
        with Flock(self.flock):
            if self.config().get("lock"):
                fail(f"ERROR: Backup of VM {self.vmid} failed - VM is locked ({self.config()['lock']})")
            self.set_lock("backup")
        mode = mode if running else "stop"
        print(f"INFO: backup mode: {mode}")
        vm_was_running, restart, error = running, False, None
        try:
            if mode == "stop" and running:
                print("INFO: stopping virtual guest")
                self.stop(skiplock=True)              # qm shutdown --skiplock --keepActive
                restart = True
            if not self.state():                      # enforce_vm_running_for_backup
                print("INFO: starting kvm to execute backup task")
                self.start(skiplock=True, paused=True)
            else:
                vm_was_running = True
            if vm_was_running and self.state() == "prelaunch":
                print("INFO: resuming VM again")      # resume_vm_after_job_start: 'cont'
                self.set_state("running")
            during = os.environ.get("PVE_SIM_DURING_BACKUP")
            if during:
                subprocess.run(during, shell=True, check=True)
            print("INFO: backup is sparse: 100% (all) zero data")
        except Fail as e:
            error = str(e)
        if not vm_was_running:                        # restore_vm_power_state
            if self.state() == "prelaunch":
                print("INFO: stopping kvm after backup task")
                self.stop(skiplock=True)
            elif self.state():
                print(f"INFO: kvm status changed after backup ('{self.state()}') - keep VM running")
        with Flock(self.flock):
            self.set_lock(None)
        if restart and not self.state():
            print("INFO: restarting vm")
            try:
                self.start(skiplock=True)             # qm start --skiplock: no lock any more
            except Fail as e:
                print(f"ERROR: {e}", file=sys.stderr)
        if error:
            fail(f"ERROR: Backup of VM {self.vmid} failed - {error}")
        print(f"INFO: Finished Backup of VM {self.vmid}")


def main(tool, argv):
    try:
        _main(tool, argv)
    except Fail as e:
        print(e, file=sys.stderr)
        sys.exit(e.code)


def _main(tool, argv):
    if tool == "vzdump":
        if not argv or not argv[0].isdigit():
            fail("usage: vzdump <vmid> [--mode snapshot|stop]", 2)
        mode = argv[2] if argv[1:2] == ["--mode"] and len(argv) > 2 else "snapshot"
        Guest("vzdump", int(argv[0])).vzdump(mode)
        return
    verbs = ("start", "stop") if tool == "pct" else ("start", "stop", "shutdown", "resume")
    if len(argv) < 2 or argv[0] not in verbs or not argv[1].isdigit():
        fail(f"usage: {tool} {'|'.join(verbs)} <vmid> [--migratedfrom <node>] [--skiplock]", 2)
    verb, vmid, rest = argv[0], int(argv[1]), argv[2:]
    migrated_from = ""
    if rest[:1] == ["--migratedfrom"] and tool == "qm" and len(rest) > 1:
        migrated_from, rest = rest[1], rest[2:]
    skiplock = "--skiplock" in rest
    guest = Guest(tool, vmid, migrated_from)
    if verb == "start":
        guest.start(skiplock=skiplock)
    elif verb == "resume":
        guest.resume()
    else:
        guest.stop(skiplock=skiplock)
