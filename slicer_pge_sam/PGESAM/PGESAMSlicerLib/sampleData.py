"""Registers the module's sample volume with Slicer's Sample Data module (inside Slicer only).

Hook (``PGESAM.__init__``): ``slicer.app.connect("startupCompleted()", sampleData.registerSampleData)``.
The volume is described in ``PGESAMLib.samples`` (URL, file name, SHA-256), tested outside Slicer.
"""

import os

from PGESAMLib.samples import SAMPLES


def resourcesDir():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources")


def registerSampleData():
    """Add the PGE-SAM category (the MNI152 T1 template) to the Sample Data module."""
    import SampleData

    for sample in SAMPLES:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample.register_kwargs(resourcesDir()))
