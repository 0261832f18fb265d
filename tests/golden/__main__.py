"""`make golden`: rewrite every tests/golden/<scenario>.nft from the current code.

Run from tests/ with the library on sys.path (the Makefile does); review the
result with `git diff tests/golden`.
"""

import sys
import tempfile
from pathlib import Path

from golden import HERE, SCENARIOS, rendered

for scenario in SCENARIOS:
    (HERE / f"{scenario}.nft").write_text(rendered(scenario, Path(tempfile.mkdtemp())))
    print(f"wrote tests/golden/{scenario}.nft", file=sys.stderr)
