"""Change /etc/pve/microseg.yaml safely: locked, validated, atomic, with a diff.

Every command that records something in microseg.yaml goes through `edit`:
under the cluster lock `file-microseg.yaml` (the id pattern PVE::Cluster
uses for cfs_lock_file), read the file, apply the change (yamledit, so the
operator's comments stay), check that the result is a valid configuration
(resolved against SDN like every reader does), then write it with tmp +
rename.  With dry_run only the diff is returned.

An edit is taken back by `undo`: an inverse edit under the same lock
(yamledit.inverse), never by writing the earlier text back over what
another command wrote in between; a field someone else changed since is
left as they made it, and the report says so.
"""

import difflib
from dataclasses import dataclass

from ..edges import pmxcfs, pveconf
from ..model.errors import MicrosegError
from ..parse import microseg_yaml
from ..policy import resolve, yamledit

LOCK_ID = "file-microseg.yaml"


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str
    entry: tuple = None         # (section, key): the one entry the change touched, for undo

    @property
    def changed(self):
        return self.old != self.new

    def diff(self):
        return "".join(difflib.unified_diff(self.old.splitlines(keepends=True),
                                            self.new.splitlines(keepends=True),
                                            fromfile=f"{self.path} (now)", tofile=f"{self.path} (new)"))


def validate(paths, text):
    """ConfigError if `text` would not be a valid microseg.yaml."""
    resolve.config(parse(paths, text), pveconf.legacy(paths), pveconf.sdn(paths))


def parse(paths, text):
    """microseg.yaml's text -> Document (an empty Document for an empty file)."""
    return microseg_yaml.parse_document(text, paths.config)


def edit(paths, change, dry_run=False, stderr=None, entry=None):
    """Apply `change(text) -> text` to microseg.yaml; returns an Edit.  A
    change confined to one entry names it (`entry`) so that it can be undone."""
    with pmxcfs.cfs_lock(paths, LOCK_ID, stderr=stderr):
        old = pmxcfs.read_file(paths.config)
        new = change(old)
        result = Edit(str(paths.config), old, new, entry)
        if result.changed:
            validate(paths, new)
            if not dry_run:
                pmxcfs.write_file(paths.config, new)
    return result


@dataclass(frozen=True)
class Undone:
    """What `undo` did: `complete` when the file holds nothing of the edit
    any more; `kept` (field, value now) someone else changed since; `failed`
    why it could not be undone at all."""
    path: str
    complete: bool
    kept: tuple = ()
    failed: str = None

    def text(self):
        if self.failed:
            return f"NOT undone in {self.path}: {self.failed}; check it by hand"
        if not self.kept:
            return f"restored {self.path}"
        return (f"NOT undone in {self.path}: " + "; ".join(
            f"{f} was changed by another edit meanwhile (now {'absent' if v is None else repr(v)})"
            for f, v in self.kept) + "; left as it is: check it")


def undo(paths, edit, stderr=None):
    """Take `edit` back by its inverse edit, under the lock.  Never raises:
    returns an Undone that says what was and was not undone."""
    try:
        with pmxcfs.cfs_lock(paths, LOCK_ID, stderr=stderr):
            current = pmxcfs.read_file(paths.config)
            if edit.entry is None and current != edit.new:
                return Undone(str(paths.config), False, failed="changed by another edit meanwhile")
            text, kept = yamledit.inverse(edit.old, edit.new, current, edit.entry, path=paths.config)
            if text != current:
                validate(paths, text)
                pmxcfs.write_file(paths.config, text)
    except MicrosegError as e:
        return Undone(str(paths.config), False, failed=str(e))
    return Undone(str(paths.config), not kept, tuple(kept))
