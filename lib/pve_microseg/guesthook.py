"""`python3 -m pve_microseg.guesthook <vmid> <phase>`: the guest hookscript.

Kept under this name because hookscript copies on shared storage (snippets)
import it; the code is in entry/hookscript.py and flows/guesthook.py.
"""

import sys

from .entry.hookscript import main
from .flows.guesthook import PHASES, PREFIX  # noqa: F401  (names copies and tests use)

if __name__ == "__main__":
    sys.exit(main())
