"""graphviz's `dot`, to turn `graph`'s DOT text into a picture (a subprocess).

The binary is paths.dot (PVE_MICROSEG_DOT, default /usr/bin/dot, from the
Debian package graphviz, which pve-microseg only suggests): a .dot output
never needs it, a .svg or .png says plainly when it is missing.
"""

import subprocess

from ..model.errors import GraphvizError

TIMEOUT = 120.0         # seconds: a VNet of thousands of guests takes a few


def draw(binary, dot_text, fmt, timeout=TIMEOUT):
    """The picture (bytes) `dot -T<fmt>` makes of dot_text; GraphvizError
    when dot is missing, fails or takes longer than timeout seconds."""
    argv = [str(binary), f"-T{fmt}"]
    try:
        proc = subprocess.run(argv, input=dot_text.encode("utf-8"), capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise GraphvizError(f"cannot draw a .{fmt} picture: {binary} is not installed (apt install graphviz), "
                            "or write the picture as .dot") from None
    except PermissionError as e:
        raise GraphvizError(f"cannot draw a .{fmt} picture: {binary}: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"{' '.join(argv)} took longer than {timeout:g} s") from None
    if proc.returncode != 0 or not proc.stdout:
        why = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise GraphvizError(f"{' '.join(argv)} failed: {why}")
    return proc.stdout
