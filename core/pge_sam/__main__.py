"""``python -m pge_sam`` is the ``pge-sam`` command."""

import sys

from .cli import main

sys.exit(main())
