"""``python -m pipeline``: the same CLI as the ``pipeline`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
