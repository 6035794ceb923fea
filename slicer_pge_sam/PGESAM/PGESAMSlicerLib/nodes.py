"""MRML nodes <-> arrays for the PGESAM module (imports ``slicer`` and ``vtk``; no session, no verbs).

What the logic reads from nodes (a volume's geometry, a slice view's matrix, an ROI's corners) and writes
into them (the include/exclude point lists, a changed region into segments).
``slicer.util.arrayFromVolume`` gives (K, J, I) == core (Z, Y, X); the pure maths is ``PGESAMLib.geometry``.
"""

import numpy as np
import vtk

import slicer

from PGESAMLib import geometry

INCLUDE_COLOR = (0.2, 0.9, 0.2)
EXCLUDE_COLOR = (0.95, 0.2, 0.2)


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


def fitSegmentation(segmentationNode, volumeNode):
    """Put an empty segmentation under the volume's transform (refused when it has segments elsewhere) and make the
    volume its reference geometry, so that regions are written voxel for voxel."""
    if segmentationNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
        if segmentationNode.GetSegmentation().GetNumberOfSegments():
            raise ValueError("The segmentation and the volume are under different transforms. "
                             "Put both under the same transform, or select an empty segmentation.")
        segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.CreateDefaultDisplayNodes()


def sliceToRas(sliceNode):
    """(4, 4) SliceToRAS matrix of a slice node (column 2 is the view normal); ``None`` for no node."""
    return None if sliceNode is None else slicer.util.arrayFromVTKMatrix(sliceNode.GetSliceToRAS())


def roiCorners(roiNode):
    """The 8 world RAS corners (8, 3) of an ROI node, rotated with it."""
    center, size, axes = [0.0] * 3, [0.0] * 3, np.zeros((3, 3))
    roiNode.GetCenterWorld(center)
    roiNode.GetSizeWorld(size)
    for n in range(3):
        column = [0.0] * 3
        roiNode.GetAxisWorld(n, column)
        axes[:, n] = column
    return geometry.box_corners(center, axes, size)


def createPointList(name, color):
    """A new point list node named ``name`` (made unique) drawn in ``color``."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", slicer.mrmlScene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    node.GetDisplayNode().SetSelectedColor(*color)
    node.GetDisplayNode().SetColor(*color)
    return node


def segmentFor(segmentationNode, segmentIds, label):
    """The id of object ``label``'s segment "PGE-SAM <label>" (created, with a free name, when missing);
    ``segmentIds`` (label -> segment id) remembers it."""
    segmentation = segmentationNode.GetSegmentation()
    segmentId = segmentIds.get(label)
    if segmentId is None or segmentation.GetSegment(segmentId) is None:
        name, n = f"PGE-SAM {label}", 1
        while segmentation.GetSegmentIdBySegmentName(name):  # segments kept from an earlier session
            n += 1
            name = f"PGE-SAM {label} ({n})"
        segmentId = segmentIds[label] = segmentation.AddEmptySegment("", name)
    return segmentId


def writeRegion(volumeNode, segmentationNode, plan, segmentIds):
    """Replace the segments' voxels inside ``plan.extent`` only (see ``PGESAMLib.regions``). ``plan``: a
    ``regions.RegionUpdate`` (uint8 (dk, dj, di) mask per label); ``segmentIds``: label -> segment id to write."""
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
        if not logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, logic.MODE_REPLACE, plan.extent):
            raise RuntimeError(f"Slicer could not update segment '{segmentId}'.")


class PointLists:
    """The parameter node's include/exclude point lists (world RAS, mm); ``parameterNode()`` returns the current
    one. ``syncing`` is true while the lists are rewritten: the
    widget ignores the markup events that fires."""

    def __init__(self, parameterNode):
        self.parameterNode = parameterNode
        self.syncing = False

    def node(self, include, create=False):
        """The include (``True``) or exclude list; ``create``: make it when the parameter node has none."""
        p, attribute = self.parameterNode(), "includePoints" if include else "excludePoints"
        if getattr(p, attribute) is None and create:
            name, color = ("PGE-SAM include", INCLUDE_COLOR) if include else ("PGE-SAM exclude", EXCLUDE_COLOR)
            setattr(p, attribute, createPointList(name, color))
        return getattr(p, attribute)

    def positions(self, include):
        node, position, out = self.node(include), [0.0, 0.0, 0.0], []
        for n in range(node.GetNumberOfControlPoints() if node is not None else 0):
            node.GetNthControlPointPositionWorld(n, position)
            out.append(tuple(position))
        return out

    def show(self, volume, points):
        """Make the lists show the voxels ``points(include)`` ((k, j, i) tuples) of ``volume`` (a
        ``geometry.VolumeGeometry``); a list is rewritten only when its voxels differ, so a point placed on a
        prompt's voxel stays where it was put."""
        for include in (True, False):
            want, have = points(include), self.positions(include)
            if sorted(map(tuple, volume.world_to_index(have, check=False).tolist()) if have else []) != want:
                self.replace(include, [tuple(p) for p in volume.index_to_world(want)] if want else [])

    def replace(self, include, positions):
        node = self.node(include, create=bool(positions))
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
