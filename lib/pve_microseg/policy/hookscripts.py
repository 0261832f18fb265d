"""Guest hookscripts: is it ours, and what attach/detach do to a guest (pure).

Proxmox holds one hookscript per guest (`hookscript: <storage>:snippets/<file>`
in its config).  pve-microseg's runs first and chains the one a guest had
before (`guests: <vmid>: chain:` in microseg.yaml), so attaching never loses
an operator's script and detaching restores it.
"""

from dataclasses import dataclass
from enum import Enum


def is_ours(volume, name):
    """Our hookscript (file `name`), on whichever storage it was installed."""
    return bool(volume) and volume.endswith(f":snippets/{name}")


class Step(Enum):
    NOTHING = "nothing"                 # already as wanted
    SET = "set"                         # set the hookscript to `volume`
    RECORD_AND_SET = "record-and-set"   # record the current one as chain, then set ours
    DELETE = "delete"                   # remove the hookscript
    REFUSE = "refuse"                   # would lose a chained script


@dataclass(frozen=True)
class Action:
    step: Step
    volume: str = None                  # the hookscript to set
    chain: str = None                   # the guest's own hookscript, to record or to restore
    why: str = ""                       # for the result line


def attach(current, chained, ours, hookscript_name):
    """What `guest attach` does to a guest whose hookscript is `current`, with
    `chained` recorded in microseg.yaml (or None)."""
    if current == ours:
        return Action(Step.NOTHING, why="already attached")
    if is_ours(current, hookscript_name):
        return Action(Step.SET, volume=ours, why=f"attached (was {current})")
    if current and chained and chained != current:
        return Action(Step.REFUSE, chain=chained,
                      why=f"its hookscript {current} would replace the chained {chained}")
    if current and chained != current:
        return Action(Step.RECORD_AND_SET, volume=ours, chain=current,
                      why=f"attached (its hookscript {current} now runs after ours)")
    return Action(Step.SET, volume=ours,
                  why="attached" + (f" (its hookscript {current} now runs after ours)" if current else ""))


def detach(current, chained, hookscript_name):
    """What `guest detach` does."""
    if not is_ours(current, hookscript_name):
        return Action(Step.NOTHING, why=f"not attached (hookscript: {current or 'none'})")
    if chained:
        return Action(Step.SET, volume=chained, chain=chained, why=f"detached, {chained} restored")
    return Action(Step.DELETE, why="detached")
