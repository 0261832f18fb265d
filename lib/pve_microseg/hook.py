"""`python3 -I -m pve_microseg.hook up|down`: the ifupdown2 if-up.d/if-down.d hook.

Kept under this name because installed /etc/network/if-{up,down}.d scripts
run it; the code is in entry/ifupdown.py and flows/reconcile.py.
"""

import sys

from .entry.ifupdown import main

if __name__ == "__main__":
    sys.exit(main())
