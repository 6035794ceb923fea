"""The Slicer module's own files run over stand-ins of Slicer (``tests/slicer_fakes.py``): the logic writes a click
into its segment and undo restores it, the point lists follow the session, the core is imported only when a
session starts, the logic opens no dialog, shortcuts live on the module panel, the in-Slicer test case runs every
test, and the parameter node's fields are the .ui's bindings."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import slicer_fakes as sf
from fakes import FakeSession, ellipsoid_volume
from pge_sam.interaction import Interaction

AXIAL = np.array([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)  # Slicer's axial SliceToRAS
IJK_TO_RAS = np.array([[0.5, 0, 0, 10.0], [0, 0.7, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
CENTRE_KJI = (6, 24, 26)  # inside ellipsoid_volume()'s ellipsoid


@pytest.fixture
def load(monkeypatch):
    yield lambda module="PGESAMSlicerLib.logic": sf.load(monkeypatch, module)
    sf.unload()


def ras(kji, nudge=(0.2, -0.3, 0.1)):
    """World RAS of voxel (k, j, i), nudged inside it."""
    return (IJK_TO_RAS @ np.array([kji[2], kji[1], kji[0], 1.0]))[:3] + nudge


def started(load, monkeypatch):
    """A logic with a session on the ellipsoid volume (the shared fake session instead of a model)."""
    logic, volume, segmentation, _ = sf.start(load(), Interaction(sessions=FakeSession.factory()), ellipsoid_volume(),
                                              IJK_TO_RAS, monkeypatch)
    return logic, volume, segmentation


def place(logic, include, kji):
    return sf.place(logic, include, ras(kji), AXIAL)


def test_a_click_is_written_into_its_segment_inside_the_changed_box_and_undo_restores_it(load, monkeypatch):
    logic, volume, segmentation = started(load, monkeypatch)
    change = place(logic, True, CENTRE_KJI)
    segment = segmentation.segment("PGE-SAM 1")
    np.testing.assert_array_equal(segment, logic.interaction.labels == 1)  # the segment equals the session's labels
    assert segment[CENTRE_KJI] == 1 and np.flatnonzero(segment.any(axis=(1, 2))).tolist() == [CENTRE_KJI[0]]
    assert change.bbox[0] == slice(6, 7)
    place(logic, False, (6, 24, 40))  # an exclude point outside the ellipsoid
    assert logic.markups.positions(False) and logic.markups.positions(True)
    logic.undo()
    assert logic.markups.positions(False) == []  # the exclude point left its list with the undo
    np.testing.assert_array_equal(segmentation.segment("PGE-SAM 1"), segment)


def test_next_segment_gets_a_free_name_and_clear_then_undo_keeps_lists_and_voxels(load, monkeypatch):
    logic, volume, segmentation = started(load, monkeypatch)
    segmentation.GetSegmentation().AddEmptySegment("", "PGE-SAM 2")  # kept from an earlier session
    place(logic, True, CENTRE_KJI)
    segmentId = logic.nextSegment()
    assert segmentation.GetSegmentation().GetSegment(segmentId).GetName() == "PGE-SAM 2 (2)"
    assert logic.markups.positions(True) == []  # the new object starts with empty lists
    place(logic, True, (6, 20, 26))
    before, points = segmentation.segment("PGE-SAM 2 (2)").copy(), logic.markups.positions(True)
    logic.clear()
    assert not segmentation.segment("PGE-SAM 2 (2)").any() and logic.markups.positions(True) == []
    logic.undo()
    np.testing.assert_array_equal(segmentation.segment("PGE-SAM 2 (2)"), before)
    assert points == [tuple(ras((6, 20, 26)))]  # the click as placed
    assert logic.markups.positions(True) == [tuple(ras((6, 20, 26), nudge=(0, 0, 0)))]  # back, at its voxel's centre
    assert segmentation.segment("PGE-SAM 1").any()  # the first object is untouched


def test_a_box_from_an_roi_and_a_moved_or_rescaled_volume(load, monkeypatch):
    logic, volume, segmentation = started(load, monkeypatch)
    centre = ras(CENTRE_KJI, nudge=(0, 0, 0))
    change = logic.addBox(sf.RoiNode(centre, (8.0, 8.0, 1.0)))  # no view: the box's thinnest axis (K)
    assert change.bbox[0] == slice(6, 7) and segmentation.segment("PGE-SAM 1")[CENTRE_KJI] == 1
    scene = sf.scene()
    volume.transform = scene.add(sf.TransformNode(np.diag([2.0, 2.0, 2.0, 1.0])))
    with pytest.raises(RuntimeError, match="no longer under the volume's transform"):
        logic.undo()
    segmentation.transform = volume.transform
    with pytest.raises(Exception, match="shape or voxel size changed"):
        logic.undo()
    volume.transform.matrix = np.eye(4)
    volume.transform.matrix[:3, 3] = (5.0, 0.0, 0.0)  # a rigid move is followed
    assert logic.undo() is not None and not segmentation.segment("PGE-SAM 1").any()


def test_the_module_loads_without_its_dependencies_and_imports_the_core_only_when_a_session_starts(load, monkeypatch):
    for heavy in ("pge_sam", "torch", "torchvision", "segment_anything"):
        monkeypatch.setitem(sys.modules, heavy, None)  # not importable, as before "Install dependencies"
    module = load("PGESAM")
    slm = sys.modules["slicer.ScriptedLoadableModule"]
    assert issubclass(module.PGESAM, slm.ScriptedLoadableModule)
    assert issubclass(module.PGESAMWidget, slm.ScriptedLoadableModuleWidget)
    assert issubclass(module.PGESAMLogic, slm.ScriptedLoadableModuleLogic)
    assert issubclass(module.PGESAMTest, slm.ScriptedLoadableModuleTest)  # Slicer finds <Module>Test here
    volume = sf.scene().add(sf.VolumeNode(ellipsoid_volume(), IJK_TO_RAS))
    logic = module.PGESAMLogic()
    assert logic.getParameterNode().modelName == "pge_sam_tiny" and not logic.hasPrompts()
    from PGESAMLib import deps

    monkeypatch.setattr(deps, "missing_requirements", lambda: [])  # as if installed: startSession imports the core
    with pytest.raises(ImportError):
        logic.startSession(volume, sf.scene().add(sf.SegmentationNode()), "sam_tiny", "cpu")


def test_the_logic_refuses_without_dialogs(load, monkeypatch):
    logic_module = load()  # the fakes' dialogs raise AssertionError
    logic = logic_module.PGESAMLogic()
    with pytest.raises(RuntimeError, match="No PGE-SAM session"):
        logic.undo()
    with pytest.raises(ValueError, match="Select an input volume"):
        logic.startSession(None, None)
    empty = sf.scene().add(sf.VolumeNode(None, IJK_TO_RAS, "empty"))
    with pytest.raises(ValueError, match="'empty' has no voxels"):
        logic.startSession(empty, sf.scene().add(sf.SegmentationNode()), "sam_tiny", "cpu")
    bent = sf.scene().add(sf.VolumeNode(ellipsoid_volume(), IJK_TO_RAS))
    bent.transform = sf.TransformNode(np.eye(4), linear=False)
    segmentation = sf.scene().add(sf.SegmentationNode())
    segmentation.transform = bent.transform
    with pytest.raises(Exception, match="Harden the transform"):
        logic.startSession(bent, segmentation, "sam_tiny", "cpu")


class FakeUi:
    """Every ``self.ui.<name>`` the widget touches: a recording stand-in."""

    def __getattr__(self, name):
        from unittest import mock

        value = mock.MagicMock(name=name)
        setattr(self, name, value)
        return value


def test_shortcuts_live_on_the_module_panel_and_only_while_it_is_shown(load):
    module = load("PGESAM")
    from PGESAMLib import SHORTCUTS

    panel = object()
    widget = module.PGESAMWidget(panel)
    widget.ui, widget.logic = FakeUi(), module.PGESAMLogic()
    widget._missing = []
    widget._createShortcuts()
    shortcuts = [s for s, _callback in widget._shortcuts]
    assert [s.key for s in shortcuts] == [entry.key for entry in SHORTCUTS]
    assert all(s.parent_ is panel for s in shortcuts) and not any(s.enabled for s in shortcuts)
    widget.enter()
    assert all(s.enabled for s in shortcuts)
    assert [s.callbacks[0].__name__ for s in shortcuts] == [entry.method for entry in SHORTCUTS]
    widget.exit()
    assert not any(s.enabled for s in shortcuts)
    widget.cleanup()
    assert all(s.deleted and s.parent_ is None and not s.callbacks for s in shortcuts) and not widget._shortcuts


def test_the_module_test_case_runs_every_test_method(load):
    module = load("PGESAMSlicerLib.moduleTest")
    case, ran = module.PGESAMTest(), []
    tests = sorted(name for name in vars(module.PGESAMTest) if name.startswith("test_"))
    for name in tests:
        setattr(case, name, lambda name=name: ran.append(name))
    case.setUp = lambda: ran.append("setUp")
    case.runTest()
    assert len(tests) >= 5 and sorted(n for n in ran if n != "setUp") == tests and ran.count("setUp") == len(tests)


def test_the_parameter_node_fields_are_the_ui_bindings(load):
    fields = load().PGESAMParameterNode.fields
    ui = ET.parse(sf.MODULE_DIR / "Resources" / "UI" / "PGESAM.ui").getroot()
    bound = {p.findtext("string"): w.get("class") for w in ui.iter("widget") for p in w.findall("property")
             if p.get("name") == "SlicerParameterName"}
    assert set(bound) == set(fields)
    assert bound["modelName"] == bound["device"] == "QComboBox"
    assert all(bound[f] == "qMRMLNodeComboBox" for f in set(fields) - {"modelName", "device"})


def axial_through(kji):
    """Slicer's axial view (SliceToRAS) through voxel (k, j, i)."""
    view = AXIAL.copy()
    view[:3, 3] = ras(kji, nudge=(0, 0, 0))
    return view


def module_widget(load, monkeypatch):
    """The module panel as Slicer sets it up (over the .ui file's widgets), its logic on the fake session, and
    a volume and a segmentation selected."""
    module = load("PGESAM")
    from PGESAMLib import deps

    monkeypatch.setattr(deps, "missing_requirements", lambda: [])
    widget = module.PGESAMWidget(mock_parent())
    widget.setup()
    widget.logic.interaction = Interaction(sessions=FakeSession.factory())
    monkeypatch.setattr(widget.logic.interaction, "use_model", lambda *args: None)
    scene = sf.scene()
    p = widget._parameterNode
    p.inputVolume = scene.add(sf.VolumeNode(ellipsoid_volume(), IJK_TO_RAS))
    p.segmentation = scene.add(sf.SegmentationNode())
    widget._onParameterNodeModified()
    scene.views["Red"] = sf.SliceNode(axial_through(CENTRE_KJI))
    return widget, p


def mock_parent():
    from unittest import mock

    return mock.MagicMock(name="panel")


def click_in_view(widget, include, kji, nudge=(0.2, -0.3, 0.0)):
    """What Slicer does on a click in place mode: a control point appears, then PointPositionDefinedEvent."""
    (widget.placeIncludePoints if include else widget.placeExcludePoints)()
    node = widget.logic.markups.node(include)
    node.AddControlPointWorld(*ras(kji, nudge))
    widget._onPointDefined(node, None)
    return node


def test_the_module_panel_drives_clicks_propagate_undo_clear_and_next_segment(load, monkeypatch):
    widget, p = module_widget(load, monkeypatch)
    click_in_view(widget, True, CENTRE_KJI)
    segment = p.segmentation.segment("PGE-SAM 1")
    assert segment[CENTRE_KJI] == 1 and widget.ui.statusLabel.text == "Segment 'PGE-SAM 1' updated."
    assert p.includePoints.GetNumberOfControlPoints() == 1
    widget.onPropagate()
    propagated = p.segmentation.segment("PGE-SAM 1")
    assert widget.ui.statusLabel.text == "Done." and propagated.any(axis=(1, 2)).sum() > 1
    widget.onUndo()  # undoes the propagation only: the click and its point stay
    np.testing.assert_array_equal(p.segmentation.segment("PGE-SAM 1"), segment)
    assert p.includePoints.GetNumberOfControlPoints() == 1
    widget.onClear()
    assert not p.segmentation.segment("PGE-SAM 1").any() and p.includePoints.GetNumberOfControlPoints() == 0
    widget.onUndo()  # voxels and the point come back
    np.testing.assert_array_equal(p.segmentation.segment("PGE-SAM 1"), segment)
    assert p.includePoints.GetNumberOfControlPoints() == 1
    widget.onNextSegment()
    assert widget.ui.statusLabel.text == "Now segmenting 'PGE-SAM 2'."
    assert p.includePoints.GetNumberOfControlPoints() == 0
    assert not sf.scene().errors


def test_other_mask_rewrites_the_clicked_slice_of_the_segment_and_undo_goes_back(load, monkeypatch):
    widget, p = module_widget(load, monkeypatch)
    assert widget.ui.otherMaskButton.enabled
    click_in_view(widget, True, CENTRE_KJI)
    grown = p.segmentation.segment("PGE-SAM 1").copy()
    widget.onOtherMask()
    other = p.segmentation.segment("PGE-SAM 1")
    assert 0 < other.sum() < grown.sum() and not (other & ~grown.astype(bool)).any()  # the fake: eroded
    np.testing.assert_array_equal(other, widget.logic.interaction.labels == 1)
    assert p.includePoints.GetNumberOfControlPoints() == 1  # the click stays
    widget.onUndo()
    np.testing.assert_array_equal(p.segmentation.segment("PGE-SAM 1"), grown)
    click_in_view(widget, False, (6, 24, 40))  # a second prompt on the slice: no other mask to show
    with pytest.raises(Exception, match="first positive click"):
        widget.logic.otherMask()
    assert not sf.scene().errors


def test_a_point_off_every_slice_view_is_refused_and_removed(load, monkeypatch):
    widget, p = module_widget(load, monkeypatch)
    click_in_view(widget, True, CENTRE_KJI)
    node = click_in_view(widget, True, (8, 24, 26))  # two slices away from the Red view: placed in 3D
    (message, err), = sf.scene().errors
    assert message == "Could not use this point." and "slice view, not in 3D" in str(err)
    assert node.GetNumberOfControlPoints() == 1  # the refused point left its list
    assert p.segmentation.segment("PGE-SAM 1")[CENTRE_KJI] == 1


def test_download_weights_fetches_the_chosen_vit_checkpoint_with_progress_and_cancel(load, monkeypatch, tmp_path,
                                                                                      served_vit_b):
    widget, p = module_widget(load, monkeypatch)
    widget.logic.cacheDir = str(tmp_path / "cache")
    assert widget.logic.weightsStatus("pge_sam_tiny") == (None, False)  # shipped: nothing to fetch
    p.modelName = "sam_vit_b"
    widget._onParameterNodeModified()
    assert widget.ui.downloadWeightsButton.enabled and "Download weights" in widget.ui.statusLabel.text

    shown = widget._onProgress
    monkeypatch.setattr(widget, "_onProgress", lambda done, total: (shown(done, total), done and widget.onCancel()))
    widget.onDownloadWeights()  # Cancel pressed after the first MiB
    assert widget.ui.statusLabel.text == "Cancelled." and not (tmp_path / "cache" / "sam_vit_b_01ec64.pth").exists()
    assert widget.ui.downloadWeightsButton.enabled

    monkeypatch.setattr(widget, "_onProgress", shown)
    widget.onDownloadWeights()
    assert (tmp_path / "cache" / "sam_vit_b_01ec64.pth").read_bytes() == served_vit_b
    assert widget.ui.progressBar.maximum == 4
    assert widget.ui.statusLabel.text == "Downloaded sam_vit_b_01ec64.pth (sha256 verified). sam_vit_b is ready."
    assert not widget.ui.downloadWeightsButton.enabled
    p.modelName = "pge_sam_vit_b"  # the checkpoint is there; its PGE adapter is not something to download
    widget._onParameterNodeModified()
    assert not widget.ui.downloadWeightsButton.enabled and "PGE adapter" in widget.ui.statusLabel.text


def test_the_weights_folder_is_a_slicer_setting_used_for_lookup_and_download(load, monkeypatch, tmp_path):
    widget, p = module_widget(load, monkeypatch)
    assert widget.logic.cacheDir is None  # nothing set: $PGE_SAM_CACHE_DIR or the OS cache folder
    p.modelName = "sam_vit_b"
    folder = tmp_path / "shared weights"
    widget.onCacheDirChanged(f" {folder} ")
    assert widget.logic.cacheDir == str(folder) and str(folder) in widget.ui.statusLabel.text
    (folder / "sam_vit_b_01ec64.pth").parent.mkdir()
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"weights")
    widget._onParameterNodeModified()
    assert not widget.ui.downloadWeightsButton.enabled and "Ready" in widget.ui.statusLabel.text

    again = type(widget)(mock_parent())  # the panel set up again (next Slicer start): the setting is read back
    again.setup()
    assert again.logic.cacheDir == str(folder) and again.ui.cacheDirPathLineEdit.currentPath == str(folder)
    again.onCacheDirChanged("")
    assert again.logic.cacheDir is None
