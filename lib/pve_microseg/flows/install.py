"""`pve-microseg hookscript install`: the packaged hookscript into a storage's
snippets directory on this node, where `qm set --hookscript` finds it."""

from ..edges import cluster, files, node
from ..model.errors import ConfigError, MicrosegError
from .result import Result


def hookscript(paths, storage="local", dry_run=False, environ=None):
    """Copy (or refresh) the hookscript; say on which other nodes it is needed too."""
    st = cluster.storages(paths).get(storage)
    if st is None:
        raise ConfigError(paths.storage_cfg, None, storage, f"no storage {storage!r}")
    volume = f"{st.id}:snippets/{paths.hookscript.name}"
    target = cluster.snippet_path(paths, volume)
    script = files.read_text(paths.hookscript, error=MicrosegError, follow_links=True)
    if script is None:
        raise MicrosegError(f"{paths.hookscript}: No such file or directory "
                            "(is the pve-microseg package installed?)")
    try:
        current = files.read_text(target, error=OSError) == script and files.executable(target)
    except OSError:
        current = False
    if not current and not dry_run:
        try:
            files.write_atomic(target, script, mode=0o755, parents=True)
        except OSError as e:
            raise MicrosegError(f"{target}: cannot write: {e.strerror}") from None
    here = node.local_node(paths, environ)
    others = [] if st.shared else [n for n in (st.nodes or cluster.nodes(paths)) if n != here]
    return Result({"volume": volume, "path": str(target), "node": here, "shared": st.shared,
                   "changed": not current, "dry-run": dry_run, "storage": st.id,
                   "lists-snippets": "snippets" in st.content, "install-also-on": others})
