"""What a pre-start that cannot complete a guest's sets does (pure).

`hookscript.on-failure` decides for an ordinary start: fail-closed refuses
it (Proxmox does not start the guest), fail-open starts it and says so.

A backup start is different.  vzdump backs up a stopped VM by starting its
QEMU paused, through the ordinary start path, so the hookscript runs
pre-start and post-start, and a refusal fails the backup job:

* vzdump sets the config lock `backup` first (exec_backup_task: lock_vm,
  proxmox/pve-manager PVE/VZDump.pm@14a22df35955d97dfc1af21e117dc894a29df0c9;
  set_lock($vmid, 'backup') in proxmox/qemu-server src/PVE/VZDump/QemuServer.pm
  @e6352be67f70042a7433a3a3c712b36d02f9f7cb), then, for a VM that is not
  running, calls vm_start with skiplock, skiptemplate and paused
  (enforce_vm_running_for_backup, same file).  The hookscript sees nothing
  else that differs: no variable of its own (exec_hookscript runs
  `<script> <vmid> <phase>` in the caller's environment, proxmox/
  pve-guest-common src/PVE/GuestHelpers.pm@4a8f6cbf78e1b6992ef77facb4ff2ab3372999e7;
  PVE_MIGRATED_FROM is empty as on any local start), so `lock: backup` in
  the config is the mark.  An ordinary start cannot run pre-start under
  that lock: vm_start refuses a locked VM unless root passes --skiplock
  (vm_start in qemu-server src/PVE/QemuServer.pm at the commit above).
  pve-container's vzdump never starts a stopped container (it starts one
  only to restart it, after removing the lock), so only VMs have backup
  starts.
* `paused` adds `-S` to the QEMU command line: the guest's CPUs do not run
  (vm_start_nolock), but the NICs are created as usual, so the tap devices
  exist and are plugged into their bridges (the pve-bridge script of each
  netdev).  A template is started with a minimized config, without NICs
  (config_to_command).
* Yet that paused QEMU can become the running guest without another
  pre-start: a start or resume of the VM while the backup holds the lock
  resumes the existing QEMU (vm_start: "a backup is currently running,
  attempt to start the guest in the existing QEMU instance" -> vm_resume,
  which accepts the backup lock, src/PVE/QemuServer/RunState.pm); vzdump
  itself resumes it in a stop-mode backup of a running VM
  (resume_vm_after_job_start: `cont`); and after the backup a QEMU that is
  no longer in `prelaunch` keeps running (restore_vm_power_state).

So refusing a backup start protects nothing for the backup itself and
fails it, while letting it through as if nothing happened would let the
guest run without complete sets the moment someone resumes it.  pve-microseg
therefore, on a backup start, tries to write the sets as on any start (this
QEMU may become the running guest), and when it cannot and fail-closed
applies: lets the paused start go on (the backup succeeds) and holds the
guest's tap devices down at post-start, for as long as that QEMU lives: a
guest resumed from it has no network.  The next ordinary start decides
afresh.  fail-open is unchanged.
"""

from enum import Enum

BACKUP_LOCK = "backup"


class Failure(Enum):
    REFUSE = "refuse"        # exit 1: Proxmox does not start the guest
    START = "start"          # fail-open: the guest starts, the task log says so
    HOLD = "hold"            # backup start: QEMU starts paused, its tap devices are held down


def backup_start(guest):
    """Whether this start of `guest` (a GuestConfig, or None when it could not
    be read) is vzdump's paused start of a VM for a backup."""
    return guest is not None and guest.type == "qemu" and guest.lock == BACKUP_LOCK


def on_failure(policy, backup):
    """policy: hookscript.on-failure ('fail-closed' or 'fail-open'; None when
    microseg.yaml could not be read: the default, fail-closed, applies)."""
    if policy == "fail-open":
        return Failure.START
    return Failure.HOLD if backup else Failure.REFUSE
