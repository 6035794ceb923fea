"""Slicer-bound parts of the PGESAM module (import ``slicer``; run inside 3D Slicer only).

``logic``: parameter node and logic; ``nodes``: MRML nodes <-> arrays (geometry,
point lists, segment write-back); ``moduleTest``: the in-Slicer test case;
``install``: installing the dependencies in a worker with a progress dialog;
``sampleData``: the Sample Data registration. The pure, Slicer-free helpers are
in ``PGESAMLib``.

Importing this package puts the ``pge_sam`` core bundled with the extension (or,
in a source checkout, ``core/``) at the front of ``sys.path`` (``PGESAMLib.core``),
so the module uses the core it was built with.
"""

import os as _os
import sys as _sys

from PGESAMLib import core as _core

CORE_DIR = _core.find_core(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
_sys.path[:] = _core.prefer_core(_sys.path, CORE_DIR)
