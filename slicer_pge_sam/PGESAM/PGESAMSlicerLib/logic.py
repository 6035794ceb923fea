"""Slicer-bound logic of the PGESAM module: parameter node, core session wrapper, segment write-back.

Imports ``slicer`` and ``vtk`` (runs inside Slicer only); the maths it relies on
is in the pure ``PGESAMLib`` package. The ``pge_sam`` core is imported inside
:meth:`PGESAMLogic.startSession`, so this module loads without torch.

Arrays: ``slicer.util.arrayFromVolume`` gives (K, J, I) == core (Z, Y, X); the
session's label buffer is uint16 (K, J, I), 0 = background, n = object n, and
object n is written into segment "PGE-SAM n".
"""

import importlib
from typing import Annotated

import numpy as np
import vtk

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from PGESAMLib import DEVICE_CHOICES, MODEL_CHOICES, deps, geometry, regions

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


class _SessionState:
    """A core session bound to one volume node and one segmentation node."""

    def __init__(self, session, labels, volumeNode, segmentationNode, key):
        self.session = session
        self.labels = labels  # uint16 (K, J, I), owned by us, written by the core
        self.volumeNode = volumeNode
        self.segmentationNode = segmentationNode
        self.key = key  # (volume id, segmentation id, model, device)
        self.segmentIds = {}  # label id -> segment id
        self.currentLabel = None


class PGESAMLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into core session calls and writes changed regions back. Never opens dialogs."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._models = {}
        self.state = None

    def getParameterNode(self):
        return PGESAMParameterNode(super().getParameterNode())

    # -- dependencies ------------------------------------------------------------------------
    @staticmethod
    def installDependencies(cuda=None):
        """pip-install the missing pinned packages (main thread only); raises if some are still missing."""
        for step in deps.pip_install_steps(deps.missing_requirements(), cuda):
            slicer.util.pip_install(step)
        importlib.invalidate_caches()  # let find_spec see the new site-packages entries
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)

    # -- geometry ----------------------------------------------------------------------------
    @staticmethod
    def volumeGeometry(volumeNode):
        """(ijk_to_ras (4, 4), parent_to_world (4, 4) or None) of a volume node as numpy arrays."""
        m = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(m)
        transformNode = volumeNode.GetParentTransformNode()
        if transformNode is None:
            return slicer.util.arrayFromVTKMatrix(m), None
        if not transformNode.IsTransformToWorldLinear():
            raise geometry.GeometryError(
                f"Volume '{volumeNode.GetName()}' is under a non-linear transform. Harden the transform "
                "(Data module, right-click > Harden transform) before segmenting.")
        p = vtk.vtkMatrix4x4()
        transformNode.GetMatrixTransformToWorld(p)
        return slicer.util.arrayFromVTKMatrix(m), slicer.util.arrayFromVTKMatrix(p)

    def sliceAxis(self, sliceNode, volumeNode):
        """KJI array axis shown by a slice view (raises ObliqueViewError for oblique views)."""
        sliceToRas = slicer.util.arrayFromVTKMatrix(sliceNode.GetSliceToRAS())
        return geometry.slice_axis_for_view(sliceToRas, *self.volumeGeometry(volumeNode))

    # -- session -----------------------------------------------------------------------------
    def startSession(self, volumeNode, segmentationNode, modelName=MODEL_CHOICES[0], device="auto"):
        """Create a core session on ``volumeNode`` that writes into ``segmentationNode``."""
        if volumeNode is None or segmentationNode is None:
            raise ValueError("Select an input volume and a segmentation first.")
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)
        from pge_sam import Normalization, Session, build_model

        if (modelName, device) not in self._models:
            self._models[(modelName, device)] = build_model(modelName, checkpoint=None, device=device)
        if segmentationNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
            if segmentationNode.GetSegmentation().GetNumberOfSegments():
                raise ValueError("The segmentation and the volume are under different transforms. "
                                 "Put both under the same transform, or select an empty segmentation.")
            segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.CreateDefaultDisplayNodes()
        volume = np.array(slicer.util.arrayFromVolume(volumeNode))  # (K, J, I) copy, safe from VTK reallocation
        labels = np.zeros(volume.shape, np.uint16)
        session = Session(self._models[(modelName, device)], volume, labels, axis=0,
                          spacing=geometry.kji_spacing(*self.volumeGeometry(volumeNode)),
                          normalization=Normalization.percentile(0.5, 99.5))
        key = (volumeNode.GetID(), segmentationNode.GetID(), modelName, device)
        self.state = _SessionState(session, labels, volumeNode, segmentationNode, key)
        self.state.currentLabel = int(session.label)
        return self.state

    def endSession(self):
        self.state = None

    def _requireState(self):
        if self.state is None:
            raise RuntimeError("No PGE-SAM session: select a volume and a segmentation, then place a prompt.")
        dims = self.state.volumeNode.GetImageData().GetDimensions()
        if tuple(dims[::-1]) != self.state.labels.shape:
            raise RuntimeError("The volume's size changed since the session started; start a new session.")
        if self.state.segmentationNode.GetTransformNodeID() != self.state.volumeNode.GetTransformNodeID():
            raise RuntimeError("The segmentation is no longer under the volume's transform; "
                               "put both under the same transform.")
        return self.state

    def addPoint(self, positionWorld, include, sliceNode):
        """Add an include/exclude point (world RAS, mm) clicked in ``sliceNode``; returns the core Change."""
        state = self._requireState()
        axis = self.sliceAxis(sliceNode, state.volumeNode)
        ijk = geometry.ras_to_ijk(positionWorld, *self.volumeGeometry(state.volumeNode))
        kji = geometry.ijk_to_kji_index(ijk, state.labels.shape)[0]
        self._useAxis(state, axis)
        change = state.session.add_point(geometry.kji_to_zyx(kji), positive=bool(include), axis=axis)
        self._writeChange(change)
        return change

    def addBox(self, roiNode, sliceNode=None):
        """Add the ROI as a 2D box prompt on the slice through its centre (view axis, or its thinnest axis)."""
        state = self._requireState()
        center, size = [0.0] * 3, [0.0] * 3
        roiNode.GetCenterWorld(center)
        roiNode.GetSizeWorld(size)
        axes = np.zeros((3, 3))
        for n in range(3):
            column = [0.0] * 3
            roiNode.GetAxisWorld(n, column)
            axes[:, n] = column
        corners = geometry.ras_to_ijk(geometry.box_corners(center, axes, size), *self.volumeGeometry(state.volumeNode))
        cornersKji = corners[:, ::-1]
        axis = self.sliceAxis(sliceNode, state.volumeNode) if sliceNode else geometry.thinnest_axis(cornersKji)
        start, stop = geometry.box_from_kji_corners(cornersKji, axis, state.labels.shape)
        self._useAxis(state, axis)
        change = state.session.add_box(start, stop, axis=axis)
        self._writeChange(change)
        return change

    @staticmethod
    def _useAxis(state, axis):
        """Propagation and precompute follow the axis of the latest prompt's view."""
        if state.session.axis != axis:
            state.session.set_axis(axis)

    def undo(self):
        """Undo the last prompt, propagation or clear; returns the core Change or None."""
        change = self._requireState().session.undo()
        if change is not None:
            self._writeChange(change)
        return change

    def clear(self):
        """Remove the current object's prompts and voxels (undoable)."""
        return self._writeChange(self._requireState().session.reset_object())

    def propagate(self, progress=None):
        """Propagate the current object along the session axis; a cancel keeps the slices done (``change.cancelled``)."""
        return self._writeChange(self._requireState().session.propagate(progress=progress))

    def precompute(self, progress=None, sliceNode=None):
        """Encode every slice along the axis shown by ``sliceNode`` (default: the session axis); returns the count."""
        state = self._requireState()
        if sliceNode is not None:
            self._useAxis(state, self.sliceAxis(sliceNode, state.volumeNode))
        return state.session.precompute(progress=progress)

    def nextSegment(self):
        """Start a new object; returns the id of its (new, empty) segment."""
        state = self._requireState()
        state.currentLabel = int(state.session.next_object())
        return self._segmentId(state.currentLabel)

    # -- write-back --------------------------------------------------------------------------
    def _writeChange(self, change):
        """Write the box a core Change reports (``bbox`` None: nothing changed); returns the Change."""
        state = self.state
        state.currentLabel = int(state.session.label)
        bbox = regions.bbox_from_change(change, state.labels.shape)
        if bbox is not None:
            self._writeRegion(bbox, int(change.label))
        return change

    def _segmentId(self, label):
        state = self.state
        segmentation = state.segmentationNode.GetSegmentation()
        segmentId = state.segmentIds.get(label)
        if segmentId is None or segmentation.GetSegment(segmentId) is None:
            name, n = f"PGE-SAM {label}", 1
            while segmentation.GetSegmentIdBySegmentName(name):  # segments kept from an earlier session
                n += 1
                name = f"PGE-SAM {label} ({n})"
            segmentId = segmentation.AddEmptySegment("", name)
            state.segmentIds[label] = segmentId
        return segmentId

    def _writeRegion(self, bbox, changedLabel):
        """Rewrite, inside ``bbox``, every segment this session owns plus the changed and current labels."""
        state = self.state
        labelIds = set(state.segmentIds) | {label for label in (changedLabel, state.currentLabel) if label}
        plan = regions.plan_region_update(state.labels, bbox, labelIds)
        if plan is None:
            return
        segmentIds = {label: self._segmentId(label) for label, mask in plan.masks.items()
                      if label in state.segmentIds or mask.any()}
        self.writeRegion(state.volumeNode, state.segmentationNode, plan, segmentIds)

    @staticmethod
    def writeRegion(volumeNode, segmentationNode, plan, segmentIds):
        """Replace the segments' voxels inside ``plan.extent`` only (see PGESAMLib.regions).

        Args:
            plan: a ``regions.RegionUpdate`` (masks uint8 (dk, dj, di) per label).
            segmentIds: label id -> segment id to write; other labels are skipped.
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
