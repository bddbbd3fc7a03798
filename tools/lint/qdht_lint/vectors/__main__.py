"""``python -m qdht_lint.vectors [SPEC_DIR]``: regenerate the spec's test vectors."""

import sys
from pathlib import Path

from qdht_lint.vectors import write_all

spec_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("protocol-spec")
for path in write_all(spec_dir):
    print(path)
