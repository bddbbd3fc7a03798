"""``python -m qdht.cli``: the same as the ``qdht`` command."""

import sys

from qdht.cli import main

sys.exit(main())
