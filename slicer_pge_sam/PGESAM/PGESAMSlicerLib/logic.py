"""Slicer-bound logic of the PGESAM module: parameter node, core session wrapper, segment write-back.

The session owns the prompts: after every verb ``PGESAMLib.driver.SessionDriver``
rewrites the include/exclude point lists (:class:`PointLists`) from the
session's prompts, so Undo, Clear and Next segment redraw them.

Imports ``slicer`` and ``vtk`` (runs inside Slicer only); the maths it relies on
is in the pure ``PGESAMLib`` package. The ``pge_sam`` core is imported inside
:meth:`PGESAMLogic.startSession`, so this module loads without torch.

Arrays: ``slicer.util.arrayFromVolume`` gives (K, J, I) == core (Z, Y, X); the
session's label buffer is uint16 (K, J, I), 0 = background, n = object n, and
object n is written into segment "PGE-SAM n".
"""

import functools
import importlib
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


class _SessionState:
    """A core session (wrapped in a ``SessionDriver``) bound to one volume node and one segmentation node."""

    def __init__(self, driver, volumeNode, segmentationNode, key):
        self.driver = driver  # PGESAMLib.driver.SessionDriver: world RAS prompts -> core verbs -> region plans
        self.volumeNode = volumeNode
        self.segmentationNode = segmentationNode
        self.key = key  # (volume id, segmentation id, model, device)
        self.segmentIds = {}  # label id -> segment id

    @property
    def session(self):
        return self.driver.session

    @property
    def labels(self):
        return self.driver.labels  # uint16 (K, J, I), owned by us, written by the core


class PGESAMLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into core session calls and writes changed regions back. Never opens dialogs.

    The RAS -> voxel -> core-verb mapping is ``PGESAMLib.driver.SessionDriver`` (tested outside
    Slicer); this class only reads matrices from MRML nodes and writes region plans into segments.
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._predictors = {}  # (model, device) -> pge_sam.Predictor: one model and cache for every session
        self.cacheDir = None  # weights folder of the ViT models; None: $PGE_SAM_CACHE_DIR or the OS cache
        self.markups = PointLists(self)
        self.state = None

    def getParameterNode(self):
        return PGESAMParameterNode(super().getParameterNode())

    # -- dependencies ------------------------------------------------------------------------
    @staticmethod
    def installDependencies(cuda=None):
        """Install what ``PGESAMSlicerLib.install.currentPlan()`` lists, without asking and on the calling
        (main) thread: torch/torchvision through the PyTorch extension, the rest with pip (floors, no pins).
        Returns the plan's steps (requirement lists). ``cuda`` is ignored (the PyTorch extension matches the
        driver). The widget's button uses ``PGESAMSlicerLib.install.installDependencies`` (asks, worker,
        progress dialog).

        Raises ``RuntimeError`` for a plan problem (Slicer too old, no PyTorch extension) and
        ``MissingDependenciesError`` if some are still missing afterwards.
        """
        from PGESAMSlicerLib import install

        plan = install.currentPlan()
        if plan.problem:
            raise RuntimeError(plan.problem)
        if plan.torch:
            install.installTorch(plan)
        if plan.pip:
            slicer.util.pip_install(plan.pip_args())
        importlib.invalidate_caches()  # let find_spec see the new site-packages entries
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)
        return plan.steps()

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

    @classmethod
    def volumeGeometryOf(cls, volumeNode):
        """``driver.VolumeGeometry`` of a volume node: IJK->RAS, parent transform and (K, J, I) shape."""
        ijkToRas, parentToWorld = cls.volumeGeometry(volumeNode)
        if volumeNode.GetImageData() is None:
            raise ValueError(f"Volume '{volumeNode.GetName()}' has no voxels; load or select another volume.")
        dims = volumeNode.GetImageData().GetDimensions()  # (I, J, K)
        return driver.VolumeGeometry(ijkToRas, tuple(dims[::-1]), parentToWorld)

    @staticmethod
    def sliceToRas(sliceNode):
        """(4, 4) SliceToRAS matrix of a slice node (column 2 is the view normal)."""
        return slicer.util.arrayFromVTKMatrix(sliceNode.GetSliceToRAS())

    def sliceAxis(self, sliceNode, volumeNode):
        """KJI array axis shown by a slice view (raises ObliqueViewError for oblique views)."""
        return geometry.slice_axis_for_view(self.sliceToRas(sliceNode), *self.volumeGeometry(volumeNode))

    # -- session -----------------------------------------------------------------------------
    def startSession(self, volumeNode, segmentationNode, modelName=MODEL_CHOICES[0], device="auto"):
        """Create a core session on ``volumeNode`` that writes into ``segmentationNode``."""
        if volumeNode is None or segmentationNode is None:
            raise ValueError("Select an input volume and a segmentation first.")
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)
        from pge_sam import Normalization, Predictor, Session, build_model

        if (modelName, device) not in self._predictors:
            model = build_model(modelName, device=device, cache_dir=self.cacheDir)
            self._predictors[(modelName, device)] = Predictor(model)
        if segmentationNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
            if segmentationNode.GetSegmentation().GetNumberOfSegments():
                raise ValueError("The segmentation and the volume are under different transforms. "
                                 "Put both under the same transform, or select an empty segmentation.")
            segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.CreateDefaultDisplayNodes()
        volume = np.array(slicer.util.arrayFromVolume(volumeNode))  # (K, J, I) copy, safe from VTK reallocation
        openSession = functools.partial(Session, self._predictors[(modelName, device)],
                                        normalization=Normalization.percentile(*driver.NORMALIZATION_PERCENTILES))
        sessionDriver = driver.SessionDriver(openSession, volume, self.volumeGeometryOf(volumeNode), self.markups)
        key = (volumeNode.GetID(), segmentationNode.GetID(), modelName, device)
        self.state = _SessionState(sessionDriver, volumeNode, segmentationNode, key)
        return self.state

    def endSession(self):
        if self.state is not None:
            self.state.session.close()  # drop pending background prefetches
        self.state = None

    def hasPrompts(self):
        """Whether the session holds a prompt (then precompute follows the last prompt's axis)."""
        return self.state is not None and self.state.driver.has_prompts

    def _requireState(self):
        if self.state is None:
            raise RuntimeError("No PGE-SAM session: select a volume and a segmentation, then place a prompt.")
        state = self.state
        if state.segmentationNode.GetTransformNodeID() != state.volumeNode.GetTransformNodeID():
            raise RuntimeError("The segmentation is no longer under the volume's transform; "
                               "put both under the same transform.")
        # The volume may have been moved since the session started; the driver refuses a new shape or spacing.
        state.driver.set_volume(self.volumeGeometryOf(state.volumeNode))
        return state

    def addPoint(self, positionWorld, include, sliceNode):
        """Add an include/exclude point (world RAS, mm) clicked in ``sliceNode``; returns the core Change."""
        state = self._requireState()
        return self._write(state.driver.add_point(positionWorld, bool(include), self.sliceToRas(sliceNode)))

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
        corners = geometry.box_corners(center, axes, size)
        return self._write(state.driver.add_box(corners, self.sliceToRas(sliceNode) if sliceNode else None))

    def undo(self):
        """Undo the last prompt, propagation or clear; returns the core Change or None."""
        return self._write(self._requireState().driver.undo())

    def clear(self):
        """Remove the current object's prompts and voxels (undoable)."""
        return self._write(self._requireState().driver.clear())

    def propagate(self, progress=None):
        """Propagate the current object along the session axis; a cancel keeps the slices done (``change.cancelled``)."""
        return self._write(self._requireState().driver.propagate(progress))

    def precompute(self, progress=None, sliceNode=None):
        """Encode every slice along the axis shown by ``sliceNode`` (default: the session axis); returns the count."""
        state = self._requireState()
        return state.driver.precompute(progress, self.sliceToRas(sliceNode) if sliceNode is not None else None)

    def nextSegment(self):
        """Start a new object; returns the id of its (new, empty) segment."""
        state = self._requireState()
        return self._segmentId(state.driver.next_object())

    # -- write-back --------------------------------------------------------------------------
    def _write(self, edit):
        """Write an ``Edit``'s region plan (``None``: nothing changed) into the segments; returns the core Change."""
        state = self.state
        plan = edit.update
        if plan is not None:
            # Segments exist for labels written before; a label gets its first segment once it has voxels.
            segmentIds = {label: self._segmentId(label) for label, mask in plan.masks.items()
                          if label in state.segmentIds or mask.any()}
            self.writeRegion(state.volumeNode, state.segmentationNode, plan, segmentIds)
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
            segmentId = segmentation.AddEmptySegment("", name)
            state.segmentIds[label] = segmentId
        return segmentId

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


class PointLists:
    """The parameter node's include/exclude point lists as the driver's ``MarkupStore`` (world RAS, mm).

    ``syncing`` is true while the lists are rewritten: the widget ignores the
    markup events that rewriting fires.
    """

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
        node = self._node(include)
        out = []
        for n in range(node.GetNumberOfControlPoints() if node is not None else 0):
            position = [0.0, 0.0, 0.0]
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
