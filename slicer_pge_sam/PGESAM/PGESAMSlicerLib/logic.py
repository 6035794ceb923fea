"""Slicer-bound logic of the PGESAM module: parameter node, MRML nodes in, changed regions out into segments.

The core's ``pge_sam.interaction.Interaction`` (shared with the napari plugin) owns the session, the models
and the embeddings the user loaded (attached again to every new session); ``PGESAMLib.driver.SessionDriver``
maps world RAS to voxels and, after every verb, redraws the include/exclude point lists (:class:`PointLists`)
from the session's prompts and plans the write-back. This module reads matrices and voxels from MRML nodes and
writes those plans into segments. It imports ``slicer`` and ``vtk``; ``pge_sam`` (and torch) only in
:meth:`PGESAMLogic.startSession`. ``slicer.util.arrayFromVolume`` gives (K, J, I) == core (Z, Y, X); object n
is written into segment "PGE-SAM n".
"""

from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import vtk

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from PGESAMLib import DEVICE_CHOICES, MODEL_CHOICES, deps, driver, geometry

INCLUDE_COLOR = (0.2, 0.9, 0.2)
EXCLUDE_COLOR = (0.95, 0.2, 0.2)


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


@dataclass
class _SessionState:
    """A ``SessionDriver`` bound to a volume node and a segmentation node; ``key``: (their ids, model, device)."""

    driver: object  # PGESAMLib.driver.SessionDriver
    volumeNode: object
    segmentationNode: object
    key: tuple
    segmentIds: dict = field(default_factory=dict)  # label id -> segment id
    session = property(lambda self: self.driver.session)
    labels = property(lambda self: self.driver.labels)  # uint16 (K, J, I), written by the core


class PGESAMLogic(ScriptedLoadableModuleLogic):
    """MRML nodes -> ``SessionDriver`` calls -> changed regions written into segments. Never opens dialogs."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.interaction = None  # pge_sam.interaction.Interaction, made by the first startSession
        self.cacheDir = None  # weights folder of the ViT models; None: $PGE_SAM_CACHE_DIR or the OS cache
        self.markups = PointLists(self)
        self.state = None

    def getParameterNode(self):
        return PGESAMParameterNode(super().getParameterNode())

    # -- geometry ----------------------------------------------------------------------------
    @staticmethod
    def volumeGeometry(volumeNode):
        """``geometry.VolumeGeometry`` of a volume node: IJK->RAS, linear parent transform, (K, J, I) shape."""
        if volumeNode.GetImageData() is None:
            raise ValueError(f"Volume '{volumeNode.GetName()}' has no voxels; load or select another volume.")
        transformNode, m, p = volumeNode.GetParentTransformNode(), vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        if transformNode is not None and not transformNode.IsTransformToWorldLinear():
            raise geometry.GeometryError(
                f"Volume '{volumeNode.GetName()}' is under a non-linear transform. Harden the transform "
                "(Data module, right-click > Harden transform) before segmenting.")
        volumeNode.GetIJKToRASMatrix(m)
        if transformNode is not None:
            transformNode.GetMatrixTransformToWorld(p)
        dims = volumeNode.GetImageData().GetDimensions()  # (I, J, K)
        return geometry.VolumeGeometry(slicer.util.arrayFromVTKMatrix(m), tuple(dims[::-1]),
                                       None if transformNode is None else slicer.util.arrayFromVTKMatrix(p))

    @staticmethod
    def sliceToRas(sliceNode):
        """(4, 4) SliceToRAS matrix of a slice node (column 2 is the view normal); ``None`` for no node."""
        return None if sliceNode is None else slicer.util.arrayFromVTKMatrix(sliceNode.GetSliceToRAS())

    def sliceAxis(self, sliceNode, volumeNode):
        """KJI array axis shown by a slice view (raises ObliqueViewError for oblique views)."""
        return self.volumeGeometry(volumeNode).view_axis(self.sliceToRas(sliceNode))

    # -- session -----------------------------------------------------------------------------
    def startSession(self, volumeNode, segmentationNode, modelName=MODEL_CHOICES[0], device="auto"):
        """Start a core session on ``volumeNode`` that writes into ``segmentationNode`` (builds the model once)."""
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
        volume = np.array(slicer.util.arrayFromVolume(volumeNode))  # (K, J, I) copy, safe from VTK reallocation
        sessionDriver = driver.SessionDriver(self.interaction, volume, self.volumeGeometry(volumeNode), self.markups)
        key = (volumeNode.GetID(), segmentationNode.GetID(), modelName, device)
        self.state = _SessionState(sessionDriver, volumeNode, segmentationNode, key)
        return self.state

    def endSession(self):
        if self.interaction is not None:
            self.interaction.detach()  # drop the session, its prefetches and the voxels (models and embeddings stay)
        self.state = None

    def hasPrompts(self):
        """Whether the session holds a prompt (then precompute follows the last prompt's axis)."""
        return self.state is not None and self.state.driver.has_prompts

    def _requireState(self):
        state = self.state
        if state is None:
            raise RuntimeError("No PGE-SAM session: select a volume and a segmentation, then place a prompt.")
        if state.segmentationNode.GetTransformNodeID() != state.volumeNode.GetTransformNodeID():
            raise RuntimeError("The segmentation is no longer under the volume's transform; "
                               "put both under the same transform.")
        state.driver.set_volume(self.volumeGeometry(state.volumeNode))  # refuses a new shape or voxel size
        return state.driver

    # -- verbs: each returns the core Change (None: nothing to undo) ---------------------------------------------
    def addPoint(self, positionWorld, include, sliceNode):
        """Add an include/exclude point (world RAS, mm) clicked in ``sliceNode``."""
        return self._write(self._requireState().add_point(positionWorld, bool(include), self.sliceToRas(sliceNode)))

    def addBox(self, roiNode, sliceNode=None):
        """Add the ROI as a 2D box prompt on the slice through its centre (view axis, or its thinnest axis)."""
        center, size, axes = [0.0] * 3, [0.0] * 3, np.zeros((3, 3))
        roiNode.GetCenterWorld(center)
        roiNode.GetSizeWorld(size)
        for n in range(3):
            column = [0.0] * 3
            roiNode.GetAxisWorld(n, column)
            axes[:, n] = column
        corners = geometry.box_corners(center, axes, size)
        return self._write(self._requireState().add_box(corners, self.sliceToRas(sliceNode)))

    def undo(self):
        """Undo the last prompt, propagation or clear."""
        return self._write(self._requireState().undo())

    def clear(self):
        """Remove the current object's prompts and voxels (undoable)."""
        return self._write(self._requireState().clear())

    def propagate(self, progress=None):
        """Propagate the current object along the session axis; a cancel keeps the slices done (``cancelled``)."""
        return self._write(self._requireState().propagate(progress))

    def precompute(self, progress=None, sliceNode=None):
        """Encode every slice along the axis ``sliceNode`` shows (default: the session axis); returns the count."""
        return self._requireState().precompute(progress, self.sliceToRas(sliceNode))

    def nextSegment(self):
        """Start a new object; returns the id of its (new, empty) segment."""
        return self._segmentId(self._requireState().next_object().label)

    def saveEmbeddings(self, folder, progress=None, sliceNode=None):
        """Save every slice's embedding along the axis ``sliceNode`` shows (default: the session axis) into
        ``folder``; returns the message."""
        return self._requireState().save_embeddings(folder, progress, self.sliceToRas(sliceNode))

    def loadEmbeddings(self, folder):
        """Use the embeddings in ``folder`` for this session and every later one (refused, naming what differs,
        when they were made for another volume, model or normalisation); returns the message."""
        self._requireState()
        return self.interaction.load_embeddings(folder)

    # -- write-back --------------------------------------------------------------------------
    def _write(self, edit):
        """Write an ``Edit``'s region plan into the segments; returns the core Change."""
        if edit.update is not None:  # a label gets its first segment once it has voxels
            segmentIds = {label: self._segmentId(label) for label, mask in edit.update.masks.items()
                          if label in self.state.segmentIds or mask.any()}
            self.writeRegion(self.state.volumeNode, self.state.segmentationNode, edit.update, segmentIds)
        return edit.change

    def _segmentId(self, label):
        state = self.state
        segmentation = state.segmentationNode.GetSegmentation()
        segmentId = state.segmentIds.get(label)
        if segmentId is None or segmentation.GetSegment(segmentId) is None:
            name, n = f"PGE-SAM {label}", 1
            while segmentation.GetSegmentIdBySegmentName(name):  # segments kept from an earlier session
                n += 1
                name = f"PGE-SAM {label} ({n})"
            segmentId = state.segmentIds[label] = segmentation.AddEmptySegment("", name)
        return segmentId

    @staticmethod
    def writeRegion(volumeNode, segmentationNode, plan, segmentIds):
        """Replace the segments' voxels inside ``plan.extent`` only (see PGESAMLib.regions).

        ``plan``: a ``regions.RegionUpdate`` (masks uint8 (dk, dj, di) per label); ``segmentIds``: label id ->
        segment id to write (other labels are skipped).
        """
        from vtk.util import numpy_support

        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        for label, segmentId in segmentIds.items():
            image = slicer.vtkOrientedImageData()
            image.SetExtent(*plan.extent)
            image.SetImageToWorldMatrix(ijkToRas)
            image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
            scalars = image.GetPointData().GetScalars()
            numpy_support.vtk_to_numpy(scalars)[:] = plan.masks[label].ravel()  # VTK order: I fastest == C order
            scalars.Modified()
            if not logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, logic.MODE_REPLACE,
                                                    plan.extent):
                raise RuntimeError(f"Slicer could not update segment '{segmentId}'.")

    @staticmethod
    def createPointList(name, color):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", slicer.mrmlScene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetSelectedColor(*color)
        node.GetDisplayNode().SetColor(*color)
        return node


class PointLists:
    """The parameter node's include/exclude point lists as the driver's ``MarkupStore`` (world RAS, mm).
    ``syncing`` is true while the lists are rewritten: the widget ignores the markup events that fires."""

    def __init__(self, logic):
        self.logic = logic
        self.syncing = False

    def _node(self, include, create=False):
        p = self.logic.getParameterNode()
        node = p.includePoints if include else p.excludePoints
        if node is None and create:
            name, color = ("PGE-SAM include", INCLUDE_COLOR) if include else ("PGE-SAM exclude", EXCLUDE_COLOR)
            node = PGESAMLogic.createPointList(name, color)
            setattr(p, "includePoints" if include else "excludePoints", node)
        return node

    def positions(self, include):
        node, position, out = self._node(include), [0.0, 0.0, 0.0], []
        for n in range(node.GetNumberOfControlPoints() if node is not None else 0):
            node.GetNthControlPointPositionWorld(n, position)
            out.append(tuple(position))
        return out

    def replace(self, include, positions):
        node = self._node(include, create=bool(positions))
        if node is None:
            return
        self.syncing = True
        try:
            with slicer.util.NodeModify(node):
                node.RemoveAllControlPoints()
                for position in positions:
                    node.AddControlPointWorld(*[float(v) for v in position])
        finally:
            self.syncing = False
