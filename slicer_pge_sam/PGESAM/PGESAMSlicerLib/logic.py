"""Slicer-bound logic of the PGESAM module: the parameter node, and session verbs whose result goes into segments.

:meth:`PGESAMLogic.startSession` puts a volume node into a ``PGESAMLib.driver.SessionDriver`` over the core's
``pge_sam.interaction.Interaction`` (shared with napari; it keeps the models and the loaded embeddings across
sessions). Each verb hands the driver world RAS prompts and writes the changed region it plans into the segment
"PGE-SAM n" of object n; the driver redraws the point lists from the session's prompts. Node conversions are
in :mod:`PGESAMSlicerLib.nodes`. ``pge_sam`` (and torch) is imported only when a session starts.
"""

from typing import Annotated

import numpy as np

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from PGESAMLib import DEVICE_CHOICES, MODEL_CHOICES, deps, driver

from . import nodes


@parameterNodeWrapper
class PGESAMParameterNode:
    """GUI state: input volume, target segmentation, prompt lists, model and device."""

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    includePoints: vtkMRMLMarkupsFiducialNode
    excludePoints: vtkMRMLMarkupsFiducialNode
    boxRoi: vtkMRMLMarkupsROINode
    modelName: Annotated[str, Choice(list(MODEL_CHOICES))] = MODEL_CHOICES[0]
    device: Annotated[str, Choice(list(DEVICE_CHOICES))] = DEVICE_CHOICES[0]


class PGESAMLogic(ScriptedLoadableModuleLogic):
    """MRML nodes -> ``SessionDriver`` verbs -> changed regions written into segments. Never opens dialogs.
    Each verb returns the core ``Change`` (``None``: nothing changed)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.interaction = None  # pge_sam.interaction.Interaction, made by the first startSession
        self.cacheDir = None  # weights folder of the ViT models; None: $PGE_SAM_CACHE_DIR or the OS cache
        self.markups = nodes.PointLists(self.getParameterNode)
        self.driver = self.volumeNode = self.segmentationNode = self.sessionKey = None
        self.segmentIds = {}  # label id -> segment id

    def getParameterNode(self):
        return PGESAMParameterNode(super().getParameterNode())

    def startSession(self, volumeNode, segmentationNode, modelName=MODEL_CHOICES[0], device="auto"):
        """Start a session on ``volumeNode`` writing into ``segmentationNode`` (the model is built once); returns
        its driver. ``sessionKey`` is then (the nodes' ids, model, device)."""
        if volumeNode is None or segmentationNode is None:
            raise ValueError("Select an input volume and a segmentation first.")
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)
        from pge_sam.interaction import Interaction

        self.interaction = self.interaction or Interaction()
        self.interaction.use_model(modelName, device, self.cacheDir)
        if segmentationNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
            if segmentationNode.GetSegmentation().GetNumberOfSegments():
                raise ValueError("The segmentation and the volume are under different transforms. "
                                 "Put both under the same transform, or select an empty segmentation.")
            segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.CreateDefaultDisplayNodes()
        voxels = np.array(slicer.util.arrayFromVolume(volumeNode))  # (K, J, I) copy, safe from VTK reallocation
        self.driver = driver.SessionDriver(self.interaction, voxels, nodes.volumeGeometry(volumeNode), self.markups)
        self.volumeNode, self.segmentationNode, self.segmentIds = volumeNode, segmentationNode, {}
        self.sessionKey = (volumeNode.GetID(), segmentationNode.GetID(), modelName, device)
        return self.driver

    def endSession(self):
        """Drop the session, its prefetches and the voxels (models and loaded embeddings stay)."""
        if self.interaction is not None:
            self.interaction.detach()
        self.driver = self.sessionKey = None

    def hasPrompts(self):
        """Whether the session holds a prompt (then precompute follows the last prompt's axis)."""
        return self.driver is not None and self.driver.has_prompts

    def _session(self):
        """The driver, after checking the nodes still fit it (same transform, shape and voxel size)."""
        if self.driver is None:
            raise RuntimeError("No PGE-SAM session: select a volume and a segmentation, then place a prompt.")
        if self.segmentationNode.GetTransformNodeID() != self.volumeNode.GetTransformNodeID():
            raise RuntimeError("The segmentation is no longer under the volume's transform; "
                               "put both under the same transform.")
        self.driver.set_volume(nodes.volumeGeometry(self.volumeNode))  # refuses a new shape or voxel size
        return self.driver

    # -- verbs ---------------------------------------------------------------------------------------------------
    def addPoint(self, positionWorld, include, sliceNode):
        """Add an include/exclude point (world RAS, mm) clicked in ``sliceNode``."""
        return self._write(self._session().add_point(positionWorld, bool(include), nodes.sliceToRas(sliceNode)))

    def addBox(self, roiNode, sliceNode=None):
        """Add the ROI as a box prompt on the slice through its centre (the view's axis, else its thinnest)."""
        return self._write(self._session().add_box(nodes.roiCorners(roiNode), nodes.sliceToRas(sliceNode)))

    def undo(self):
        """Undo the last prompt, propagation or clear."""
        return self._write(self._session().undo())

    def clear(self):
        """Remove the current object's prompts and voxels (undoable)."""
        return self._write(self._session().clear())

    def propagate(self, progress=None):
        """Propagate the current object along the session axis; a cancel keeps the slices done."""
        return self._write(self._session().propagate(progress))

    def nextSegment(self):
        """Start a new object; returns the id of its (new, empty) segment."""
        return nodes.segmentFor(self.segmentationNode, self.segmentIds, self._session().next_object().label)

    def precompute(self, progress=None, sliceNode=None):
        """Encode every slice along the axis ``sliceNode`` shows (default: the session axis); returns the count."""
        return self._session().precompute(progress, nodes.sliceToRas(sliceNode))

    def saveEmbeddings(self, folder, progress=None, sliceNode=None):
        """Save every slice's embedding along that axis into ``folder``; returns the message."""
        return self._session().save_embeddings(folder, progress, nodes.sliceToRas(sliceNode))

    def loadEmbeddings(self, folder):
        """Use the embeddings in ``folder`` now and in later sessions (refused, naming what differs, when made for
        another volume, model or normalisation); returns the message."""
        self._session()
        return self.interaction.load_embeddings(folder)

    def _write(self, edit):
        """Write an ``Edit``'s region plan into the segments (a label gets a segment once it has voxels)."""
        if edit.update is not None:
            segmentIds = {label: nodes.segmentFor(self.segmentationNode, self.segmentIds, label)
                          for label, mask in edit.update.masks.items() if label in self.segmentIds or mask.any()}
            nodes.writeRegion(self.volumeNode, self.segmentationNode, edit.update, segmentIds)
        return edit.change
