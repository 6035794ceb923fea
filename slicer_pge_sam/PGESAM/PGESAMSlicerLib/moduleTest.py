"""In-Slicer tests of the PGESAM module.

Run from the module panel (Developer mode > "Reload and Test") or by typing
``slicer.selfTests["PGESAM"]()`` in Slicer's Python console.
The other tests need only Slicer; ``test_PointPromptsOnMRHead`` needs the
dependencies (PGE-SAM > "Install dependencies"; it is skipped, with a message,
without them, as in the extension build's CTest run registered with
``slicer_add_python_unittest``) and downloads MRHead through SampleData the
first time.
"""

import numpy as np
import vtk

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from PGESAMLib import deps, geometry, regions

SHAPE = (7, 9, 11)  # (K, J, I)
SAGITTAL_ACQUISITION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # I -> A, J -> -S, K -> -R


def _matrix(vtkMatrix):
    return slicer.util.arrayFromVTKMatrix(vtkMatrix)


class PGESAMTest(ScriptedLoadableModuleTest):
    """Geometry, view axis, region write-back and an end-to-end prompt run on MRHead."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_BundledCoreVersionAndSampleData, self.test_WorldToVoxelMatchesSlicer,
                     self.test_SliceAxisFollowsViewOrientation, self.test_RegionWriteBackKeepsGeometryAndOutside,
                     self.test_ShortcutsLiveOnTheModulePanel, self.test_WeightsFolderAndDownloadButton,
                     self.test_PointPromptsOnMRHead):
            self.setUp()
            test()

    @staticmethod
    def _volume(direction):
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "PGESAMTestVolume")
        slicer.util.updateVolumeFromArray(volume, np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE))
        volume.SetOrigin(-20.5, 13.0, 40.25)
        volume.SetSpacing(0.7, 1.3, 2.5)
        volume.SetIJKToRASDirections(*np.asarray(direction, float).ravel())
        return volume

    def test_BundledCoreVersionAndSampleData(self):
        """This Slicer is supported, the core bundled with the extension is the one imported, and the
        sample volume is registered with Sample Data (nothing heavy is imported)."""
        import os

        import PGESAMSlicerLib
        from PGESAMLib import core
        from PGESAMSlicerLib import sampleData

        self.delayDisplay("Slicer version, bundled core, sample data")
        self.assertIsNone(deps.version_problem((slicer.app.majorVersion, slicer.app.minorVersion)))
        self.assertIsNotNone(PGESAMSlicerLib.CORE_DIR, "no pge_sam core next to the module (build the extension)")
        import pge_sam

        self.assertIsNone(core.loaded_elsewhere(pge_sam.__file__, PGESAMSlicerLib.CORE_DIR))
        weights = os.path.join(PGESAMSlicerLib.CORE_DIR, "pge_sam", "weights", "sam_tiny.safetensors")
        self.assertTrue(os.path.isfile(weights), weights)
        sampleData.registerSampleData()
        self.assertIn("PGE-SAM", slicer.modules.sampleDataSources)

    def test_WorldToVoxelMatchesSlicer(self):
        """PGESAMLib world -> IJK equals Slicer's own transform chain, with a rotating+scaling parent."""
        from PGESAMSlicerLib import nodes

        self.delayDisplay("World RAS -> IJK under a parent transform")
        volume = self._volume(SAGITTAL_ACQUISITION)
        transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        t = vtk.vtkTransform()
        t.Translate(5.0, -3.0, 12.0)
        t.RotateWXYZ(30.0, 1.0, 1.0, 0.0)
        t.Scale(1.5, 0.8, 1.2)
        transformNode.SetMatrixTransformToParent(t.GetMatrix())
        volume.SetAndObserveTransformNodeID(transformNode.GetID())

        volumeGeometry = nodes.volumeGeometry(volume)
        worldToLocal = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volume.GetParentTransformNode(), worldToLocal)
        rasToIjk = vtk.vtkMatrix4x4()
        volume.GetRASToIJKMatrix(rasToIjk)
        for world in np.random.default_rng(0).uniform(-60.0, 60.0, size=(10, 3)):
            local = worldToLocal.TransformPoint(world.tolist())
            expected = rasToIjk.MultiplyPoint([*local, 1.0])[:3]
            np.testing.assert_allclose(geometry.ras_to_ijk(world, volumeGeometry.ijk_to_ras,
                                                           volumeGeometry.parent_to_world)[0], expected, atol=1e-6)

    def test_SliceAxisFollowsViewOrientation(self):
        """Red/Green/Yellow map to array axes by geometry; tilted views are refused until rotated to the volume."""
        from PGESAMSlicerLib import nodes

        self.delayDisplay("Slice view -> array axis")
        volume = self._volume(SAGITTAL_ACQUISITION)

        def sliceAxis(sliceNode):
            return nodes.volumeGeometry(volume).view_axis(nodes.sliceToRas(sliceNode))

        for name, axis in (("Red", 1), ("Green", 2), ("Yellow", 0)):  # axial S = -J, coronal A = I, sagittal R = -K
            sliceNode = slicer.mrmlScene.GetNodeByID(f"vtkMRMLSliceNode{name}")
            sliceNode.SetOrientationToDefault()
            self.assertEqual(sliceAxis(sliceNode), axis, name)
        red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
        tilt = vtk.vtkTransform()
        tilt.RotateX(10.0)
        tilted = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Multiply4x4(tilt.GetMatrix(), red.GetSliceToRAS(), tilted)
        red.GetSliceToRAS().DeepCopy(tilted)
        red.UpdateMatrices()
        with self.assertRaises(geometry.ObliqueViewError):
            sliceAxis(red)
        red.RotateToVolumePlane(volume)
        self.assertEqual(sliceAxis(red), 1)

    def test_RegionWriteBackKeepsGeometryAndOutside(self):
        """Only the changed box is replaced; the segment keeps the volume's geometry."""
        from PGESAMSlicerLib import nodes

        self.delayDisplay("Changed-region write-back")
        volume = self._volume(SAGITTAL_ACQUISITION)
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment("", "PGE-SAM 1")
        slicer.util.updateSegmentBinaryLabelmapFromArray(np.ones(SHAPE, np.uint8), segmentationNode, segmentId, volume)

        labels = np.zeros(SHAPE, np.uint16)
        labels[2:4, 3:7, 5:9] = 1
        labels[3, 4, 6] = 2
        box = (slice(1, 5), slice(2, 8), slice(4, 10))
        plan = regions.plan_region_update(labels, box, [1])
        nodes.writeRegion(volume, segmentationNode, plan, {1: segmentId})

        result = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volume)
        expected = np.ones(SHAPE, np.uint8)
        expected[box] = labels[box] == 1
        np.testing.assert_array_equal(result, expected)
        self._assertSegmentGeometry(segmentationNode, segmentId, volume)

    def test_ShortcutsLiveOnTheModulePanel(self):
        """One QShortcut per PGESAMLib.SHORTCUTS entry, parented to the module panel, enabled only while shown."""
        import qt

        from PGESAMLib import SHORTCUTS

        self.delayDisplay("Keyboard shortcuts")
        slicer.util.selectModule("PGESAM")
        widget = slicer.modules.pgesam.widgetRepresentation().self()
        shortcuts = [shortcut for shortcut, _callback in widget._shortcuts]
        self.assertEqual([s.key().toString() for s in shortcuts],
                         [qt.QKeySequence(entry.key).toString() for entry in SHORTCUTS])
        self.assertTrue(all(s.parent() == widget.parent for s in shortcuts))
        self.assertTrue(all(s.enabled for s in shortcuts))
        slicer.util.selectModule("Data")
        self.assertFalse(any(s.enabled for s in shortcuts))

    def test_WeightsFolderAndDownloadButton(self):
        """The Weights folder is a setting; Download weights is offered only for a ViT model missing its checkpoint
        (nothing is downloaded here)."""
        import tempfile

        import qt

        from PGESAM import CACHE_DIR_SETTING

        self.delayDisplay("Weights folder and Download weights")
        slicer.util.selectModule("PGESAM")
        widget = slicer.modules.pgesam.widgetRepresentation().self()
        before = qt.QSettings().value(CACHE_DIR_SETTING, "")
        parameters = widget._parameterNode
        try:
            with tempfile.TemporaryDirectory() as folder:
                widget.ui.cacheDirPathLineEdit.currentPath = folder
                self.assertEqual(widget.logic.cacheDir, folder)
                self.assertEqual(qt.QSettings().value(CACHE_DIR_SETTING, ""), folder)
                parameters.modelName = "sam_tiny"
                self.assertFalse(widget.ui.downloadWeightsButton.enabled)
                if not deps.missing_requirements():
                    parameters.modelName = "sam_vit_b"
                    self.assertTrue(widget.ui.downloadWeightsButton.enabled)
                    self.assertIn("Download weights", widget.ui.statusLabel.text)
        finally:  # the user's folder back (an empty path edit may not signal, so the widget is told directly)
            widget.ui.cacheDirPathLineEdit.currentPath = before or ""
            widget.onCacheDirChanged(before or "")
            parameters.modelName = "pge_sam_tiny"

    def _assertSegmentGeometry(self, segmentationNode, segmentId, volume):
        image = segmentationNode.GetBinaryLabelmapInternalRepresentation(segmentId)
        imageToWorld, ijkToRas = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(imageToWorld)
        volume.GetIJKToRASMatrix(ijkToRas)
        np.testing.assert_allclose(_matrix(imageToWorld), _matrix(ijkToRas), atol=1e-6)
        np.testing.assert_allclose(image.GetSpacing(), volume.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(image.GetOrigin(), volume.GetOrigin(), atol=1e-6)
        self.assertEqual(segmentationNode.GetTransformNodeID(), volume.GetTransformNodeID())

    def test_PointPromptsOnMRHead(self):
        """End to end with the tiny model: include/exclude points, changed region only, undo."""
        import SampleData

        from PGESAMSlicerLib import nodes
        from PGESAMSlicerLib.logic import PGESAMLogic

        missing = deps.missing_requirements()
        if missing:  # e.g. the extension build's CTest run: torch is installed on first use, not at build time
            self.delayDisplay("Skipped the end-to-end test: install the dependencies first (PGE-SAM > "
                              "'Install dependencies'): " + ", ".join(r.specifier for r in missing))
            return
        self.delayDisplay("Loading MRHead")
        volume = SampleData.SampleDataLogic().downloadMRHead()
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = PGESAMLogic()
        from pge_sam import default_model  # pge_sam_tiny when its adapter is installed, else sam_tiny

        logic.startSession(volume, segmentationNode, default_model(), "cpu")
        np.testing.assert_allclose(logic.interaction.session.spacing, volume.GetSpacing()[::-1], rtol=1e-9)  # (Z, Y, X)
        shape = logic.interaction.labels.shape
        volumeGeometry = nodes.volumeGeometry(volume)

        def world(kji):
            return volumeGeometry.index_to_world(kji)[0]

        red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
        red.SetOrientationToAxial()
        red.RotateToVolumePlane(volume)
        include = np.array(shape) // 2
        red.JumpSliceByOffsetting(*world(include))
        axis = volumeGeometry.view_axis(nodes.sliceToRas(red))
        exclude = np.full(3, 3)  # an image corner: air
        exclude[axis] = include[axis]

        self.delayDisplay("Include and exclude points")
        includeNode = nodes.createPointList("PGE-SAM include", nodes.INCLUDE_COLOR)
        excludeNode = nodes.createPointList("PGE-SAM exclude", nodes.EXCLUDE_COLOR)
        includeNode.AddControlPointWorld(*world(include))
        excludeNode.AddControlPointWorld(*world(exclude))
        position = [0.0, 0.0, 0.0]
        includeNode.GetNthControlPointPositionWorld(0, position)
        logic.addPoint(position, True, red)
        excludeNode.GetNthControlPointPositionWorld(0, position)
        change = logic.addPoint(position, False, red)
        segmentId = logic.segmentIds[change.label]
        segment = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volume)
        self.assertEqual(segment.shape, shape)
        k, j, i = include
        self.assertTrue(segment[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3].any(), "no voxels near the include point")
        self.assertEqual(segment[tuple(exclude)], 0, "the exclude point is inside the segment")
        others = tuple(a for a in range(3) if a != axis)
        self.assertEqual(np.flatnonzero(segment.any(axis=others)).tolist(), [include[axis]])
        self._assertSegmentGeometry(segmentationNode, segmentId, volume)

        self.delayDisplay("A point on another slice changes only its reported box")
        second = include.copy()
        second[axis] += 4
        red.JumpSliceByOffsetting(*world(second))
        change2 = logic.addPoint(world(second), True, red)
        after = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volume)
        outside = np.ones(shape, bool)
        outside[change2.bbox] = False
        np.testing.assert_array_equal(after[outside], segment[outside])
        self.assertTrue(after[second[0] - 2:second[0] + 3, second[1] - 2:second[1] + 3,
                              second[2] - 2:second[2] + 3].any())

        self.delayDisplay("Undo restores the segment")
        logic.undo()
        undone = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volume)
        np.testing.assert_array_equal(undone, segment)
        self.delayDisplay("PGESAM tests passed")
