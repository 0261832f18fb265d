"""`pve-microseg import-legacy`: the article's L2-microsegmentation.conf ->
bridges: entries of microseg.yaml (comments kept, locked, validated)."""

from ..edges import pveconf
from ..model.errors import MicrosegError
from ..policy import yamledit
from . import configedit
from .result import Result


def import_legacy(paths, dry_run=False):
    legacy = pveconf.legacy(paths, missing=None)
    if legacy is None:
        raise MicrosegError(f"{paths.legacy_config} does not exist: nothing to import")
    imported, skipped = [], []

    def change(current):
        imported.clear()
        skipped.clear()
        have = {b.name: b for b in configedit.parse(paths, current).bridges}
        for spec in legacy:
            if spec.name in have:
                skipped.append({"bridge": spec.name, "why": f"already in {have[spec.name].path}:"
                                f"{have[spec.name].line}"})
                continue
            macs = list(dict.fromkeys(m for m, _ in spec.macs))
            ips = list(dict.fromkeys(str(ip) for ip, _ in spec.ips))
            current = yamledit.set_entry(current, ("bridges", spec.name),
                                         {"gateway-mac": macs, "gateway-ip": ips}, path=paths.config)
            imported.append(spec.name)
        return current

    edit = configedit.edit(paths, change, dry_run=dry_run)
    return Result({"imported": imported, "skipped": skipped, "dry-run": dry_run, "diff": edit.diff(),
                   "config": str(paths.config), "legacy": str(paths.legacy_config)})
