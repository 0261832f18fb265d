"""Change /etc/pve/microseg.yaml safely: locked, validated, atomic, with a diff.

Every command that records something in microseg.yaml goes through `edit`:
under the cluster lock `file-microseg.yaml` (the id pattern PVE::Cluster
uses for cfs_lock_file), read the file, apply the change (yamledit, so the
operator's comments stay), check that the result is a valid configuration
(resolved against SDN like every reader does), then write it with tmp +
rename.  With dry_run only the diff is returned.
"""

import difflib
from dataclasses import dataclass

from ..edges import pmxcfs, pveconf
from ..parse import microseg_yaml
from ..policy import resolve

LOCK_ID = "file-microseg.yaml"


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str

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


def edit(paths, change, dry_run=False, stderr=None):
    """Apply `change(text) -> text` to microseg.yaml; returns an Edit."""
    with pmxcfs.cfs_lock(paths, LOCK_ID, stderr=stderr):
        old = pmxcfs.read_file(paths.config)
        new = change(old)
        result = Edit(str(paths.config), old, new)
        if result.changed:
            validate(paths, new)
            if not dry_run:
                pmxcfs.write_file(paths.config, new)
    return result
