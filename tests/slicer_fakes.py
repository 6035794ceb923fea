"""Stand-ins for Slicer's Python modules (``slicer``, ``qt``, ``vtk``) and a small MRML scene, so that the Slicer
module's own files (``PGESAM.py``, ``PGESAMSlicerLib``) import and run outside Slicer.

Only what the module calls is modelled: volume, segmentation, point-list, ROI, slice and transform nodes as numpy
arrays and matrices; the segment write-back (``SetBinaryLabelmapToSegment``, replace inside an extent) into a full
(K, J, I) array per segment; the parameter-node wrapper as typed properties over a dict; ``qt.QShortcut`` with a
parent and an enabled flag. Dialogs raise, so a test notices one. :func:`load` installs them and imports the module.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np

MODULE_DIR = Path(__file__).resolve().parents[1] / "slicer_pge_sam" / "PGESAM"
_ids = itertools.count(1)


class Matrix4x4:
    """``vtk.vtkMatrix4x4`` over a numpy (4, 4) array."""

    def __init__(self, array=None):
        self.array = np.eye(4) if array is None else np.asarray(array, float).copy()

    def DeepCopy(self, other):
        self.array[:] = other.array


class Node:
    """Base of the fake MRML nodes: an id, a name, a parent transform."""

    def __init__(self, name="node"):
        self.id, self.name, self.transform = f"vtkMRMLNode{next(_ids)}", name, None

    def GetID(self):
        return self.id

    def GetName(self):
        return self.name

    def GetTransformNodeID(self):
        return None if self.transform is None else self.transform.GetID()

    def GetParentTransformNode(self):
        return self.transform

    def SetAndObserveTransformNodeID(self, nodeId):
        self.transform = None if nodeId is None else SCENE.byId[nodeId]

    def CreateDefaultDisplayNodes(self):
        self.display = mock.Mock()

    def GetDisplayNode(self):
        return self.display


class TransformNode(Node):
    def __init__(self, matrix, linear=True):
        super().__init__("transform")
        self.matrix, self.linear = np.asarray(matrix, float), linear

    def IsTransformToWorldLinear(self):
        return self.linear

    def GetMatrixTransformToWorld(self, m):
        m.array[:] = self.matrix


class VolumeNode(Node):
    """A scalar volume: voxels (K, J, I) and its IJK->RAS matrix."""

    def __init__(self, voxels, ijk_to_ras, name="volume"):
        super().__init__(name)
        self.voxels, self.ijk_to_ras = voxels, np.asarray(ijk_to_ras, float)

    def GetImageData(self):
        return None if self.voxels is None else types.SimpleNamespace(GetDimensions=lambda: self.voxels.shape[::-1])

    def GetIJKToRASMatrix(self, m):
        m.array[:] = self.ijk_to_ras


class Segmentation:
    """``vtkSegmentation``: segment ids and names; the voxels live on the node."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def AddEmptySegment(self, segmentId, name):
        segmentId = segmentId or f"Segment_{len(self.names) + 1}"
        self.names[segmentId] = name
        return segmentId

    def GetSegment(self, segmentId):
        return types.SimpleNamespace(GetName=lambda: self.names[segmentId]) if segmentId in self.names else None

    def GetSegmentIdBySegmentName(self, name):
        return next((i for i, n in self.names.items() if n == name), "")

    def GetNumberOfSegments(self):
        return len(self.names)


class SegmentationNode(Node):
    """Segments as full uint8 (K, J, I) arrays (``arrays``), on the reference volume's grid."""

    def __init__(self, name="segmentation"):
        super().__init__(name)
        self.segmentation, self.arrays, self.reference = Segmentation(), {}, None
        self.writes: list[tuple[str, tuple[int, ...]]] = []  # (segment id, extent) of every region write

    def GetSegmentation(self):
        return self.segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volume):
        self.reference = volume

    def segment(self, name):
        """The voxels of the segment called ``name`` (zeros when never written)."""
        segmentId = self.segmentation.GetSegmentIdBySegmentName(name)
        return self.arrays.get(segmentId, np.zeros(self.reference.voxels.shape, np.uint8))


class PointListNode(Node):
    """A markups point list: world RAS control points."""

    def __init__(self, name="points"):
        super().__init__(name)
        self.points: list[tuple[float, float, float]] = []

    def GetNumberOfControlPoints(self):
        return len(self.points)

    def GetNthControlPointPositionWorld(self, n, out):
        out[:] = self.points[n]

    def RemoveNthControlPoint(self, n):
        del self.points[n]

    def RemoveAllControlPoints(self):
        self.points = []

    def AddControlPointWorld(self, x, y, z):
        self.points.append((float(x), float(y), float(z)))


class RoiNode(Node):
    """An ROI: centre, size and axes in world RAS."""

    def __init__(self, center, size, axes=np.eye(3)):
        super().__init__("roi")
        self.center, self.size, self.axes = list(center), list(size), np.asarray(axes, float)

    def GetCenterWorld(self, out):
        out[:] = self.center

    def GetSizeWorld(self, out):
        out[:] = self.size

    def GetAxisWorld(self, n, out):
        out[:] = self.axes[:, n]


class SliceNode(Node):
    def __init__(self, slice_to_ras):
        super().__init__("slice")
        self.matrix = Matrix4x4(slice_to_ras)

    def GetSliceToRAS(self):
        return self.matrix


class Scene:
    """``slicer.mrmlScene``: nodes by id; the parameter dict of each module logic."""

    CLASSES = {"vtkMRMLMarkupsFiducialNode": PointListNode, "vtkMRMLSegmentationNode": SegmentationNode}
    StartCloseEvent, EndCloseEvent = 1, 2

    def __init__(self):
        self.byId: dict[str, Node] = {}
        self.parameters: dict = {}
        self.errors: list[tuple[str, Exception]] = []  # what tryWithErrorDisplay showed
        self.views: dict[str, SliceNode] = {}  # slice views shown, by name ("Red", ...)

    def add(self, node):
        self.byId[node.GetID()] = node
        return node

    def AddNewNodeByClass(self, className, name="node"):
        return self.add(self.CLASSES[className](name))

    def GenerateUniqueName(self, name):
        return name

    def GetNodeByID(self, nodeId):
        return self.views.get(nodeId.replace("vtkMRMLSliceNode", "")) or self.byId.get(nodeId)

    def GetFirstNodeByClass(self, className):
        wanted = {"vtkMRMLScalarVolumeNode": VolumeNode, **self.CLASSES}[className]
        return next((n for n in self.byId.values() if isinstance(n, wanted)), None)


SCENE = Scene()


class OrientedImage:
    """``vtkOrientedImageData``: an extent and one uint8 scalar array, I fastest."""

    def SetExtent(self, *extent):
        self.extent = extent

    def SetImageToWorldMatrix(self, m):
        self.image_to_world = m.array.copy()

    def AllocateScalars(self, dtype, components):
        i0, i1, j0, j1, k0, k1 = self.extent
        self.scalars = types.SimpleNamespace(values=np.zeros((i1 - i0 + 1) * (j1 - j0 + 1) * (k1 - k0 + 1), np.uint8),
                                             Modified=lambda: None)

    def GetPointData(self):
        return types.SimpleNamespace(GetScalars=lambda: self.scalars)


def set_binary_labelmap(image, segmentationNode, segmentId, mode, extent):
    """``SetBinaryLabelmapToSegment`` in replace mode: the segment's voxels inside ``extent`` become the image's."""
    i0, i1, j0, j1, k0, k1 = extent
    segmentationNode.writes.append((segmentId, tuple(extent)))
    full = segmentationNode.arrays.setdefault(segmentId, np.zeros(segmentationNode.reference.voxels.shape, np.uint8))
    full[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1] = image.scalars.values.reshape(k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1)
    return True


def parameter_node_wrapper(cls):
    """``slicer.parameterNodeWrapper``: the annotated fields become properties over the logic's parameter dict."""
    fields = dict(cls.__annotations__)
    defaults = {name: cls.__dict__.get(name) for name in fields}

    def init(self, store):
        self.store = store
        for name in fields:
            store.setdefault(name, defaults[name])

    def field(name):
        return property(lambda self: self.store[name], lambda self, value: self.store.__setitem__(name, value))

    namespace = {"__init__": init, "__doc__": cls.__doc__, "fields": fields, "connectGui": lambda self, ui: "tag",
                 "disconnectGui": lambda self, tag: None, **{name: field(name) for name in fields}}
    return type(cls.__name__, (), namespace)


class Shortcut:
    """``qt.QShortcut``: parent, key, enabled flag, connected callbacks."""

    def __init__(self, parent):
        self.parent_, self.key, self.enabled, self.callbacks, self.deleted = parent, None, True, [], False

    def setKey(self, key):
        self.key = key

    def setEnabled(self, enabled):
        self.enabled = enabled

    def connect(self, signal, callback):
        self.callbacks.append(callback)

    def disconnect(self, signal, callback):
        self.callbacks.remove(callback)

    def setParent(self, parent):
        self.parent_ = parent

    def deleteLater(self):
        self.deleted = True


class ModuleBase:
    """Base of ``ScriptedLoadableModule``, ``...Widget``, ``...Logic`` and ``...Test``."""

    def __init__(self, parent=None):
        self.parent = parent

    def getParameterNode(self):
        return SCENE.parameters

    def resourcePath(self, relative):
        return str(MODULE_DIR / "Resources" / relative)

    def setup(self):
        self.layout = mock.MagicMock(name="layout")

    def delayDisplay(self, message):
        pass


class ObservationMixin:
    """``slicer.util.VTKObservationMixin``: observers are not modelled."""

    def __init__(self):
        pass

    def addObserver(self, *args):
        pass

    def removeObserver(self, *args):
        pass

    def removeObservers(self):
        pass


def _dialog(*args, **kwargs):
    raise AssertionError(f"a dialog was opened: {args}")


@contextlib.contextmanager
def try_with_error_display(message=None, show=True, waitCursor=False):
    """``slicer.util.tryWithErrorDisplay``: an exception is shown (recorded in ``scene().errors``) and re-raised."""
    try:
        yield
    except Exception as err:
        SCENE.errors.append((message, err))
        raise


class UiWidgets:
    """``slicer.util.childWidgetVariables`` of the module's .ui file: one recording stand-in per widget it names;
    any other name raises AttributeError, as in Slicer."""

    def __init__(self, ui_file=MODULE_DIR / "Resources" / "UI" / "PGESAM.ui"):
        import xml.etree.ElementTree as ET

        for widget in ET.parse(ui_file).getroot().iter("widget"):
            setattr(self, widget.get("name"), mock.MagicMock(name=widget.get("name")))


def layout_manager():
    """``slicer.app.layoutManager()`` showing the scene's slice views."""
    def widget(name):
        return types.SimpleNamespace(isVisible=lambda: True, mrmlSliceNode=lambda: SCENE.views[name],
                                     sliceView=lambda: types.SimpleNamespace(underMouse=lambda: False))
    return types.SimpleNamespace(sliceViewNames=lambda: list(SCENE.views), sliceWidget=widget)


def fake_modules() -> dict[str, types.ModuleType]:
    """``slicer`` (with submodules), ``qt`` and ``vtk`` as modules."""
    slicer = types.ModuleType("slicer")
    util = types.SimpleNamespace(
        arrayFromVolume=lambda node: node.voxels, arrayFromVTKMatrix=lambda m: m.array.copy(),
        NodeModify=lambda node: contextlib.nullcontext(), VTKObservationMixin=ObservationMixin, errorDisplay=_dialog,
        warningDisplay=_dialog, infoDisplay=_dialog, confirmOkCancelDisplay=_dialog, WaitCursor=contextlib.nullcontext,
        tryWithErrorDisplay=try_with_error_display, loadUI=lambda path: mock.MagicMock(name=path),
        childWidgetVariables=lambda widget: UiWidgets())
    slicer.util, slicer.mrmlScene = util, SCENE
    slicer.vtkMRMLScalarVolumeNode, slicer.vtkMRMLSegmentationNode = VolumeNode, SegmentationNode
    slicer.vtkMRMLMarkupsFiducialNode, slicer.vtkMRMLMarkupsROINode = PointListNode, RoiNode
    slicer.vtkMRMLMarkupsNode = types.SimpleNamespace(PointPositionDefinedEvent=1, PointEndInteractionEvent=2)
    slicer.vtkOrientedImageData = OrientedImage
    slicer.vtkSlicerSegmentationsModuleLogic = types.SimpleNamespace(SetBinaryLabelmapToSegment=set_binary_labelmap,
                                                                     MODE_REPLACE=0)
    slicer.app = types.SimpleNamespace(majorVersion=5, minorVersion=10, connect=lambda *a: None,
                                       processEvents=lambda: None, layoutManager=layout_manager)
    slicer.qSlicerMarkupsPlaceWidget = types.SimpleNamespace(ForcePlaceMultipleMarkups=2)
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper, pnw.Choice = parameter_node_wrapper, lambda choices: choices
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(slm, name, type(name, (ModuleBase,), {}))
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr, i18n.translate = (lambda text: text), (lambda context, text: text)
    qt = types.ModuleType("qt")
    qt.QShortcut, qt.QKeySequence = Shortcut, str
    qt.QFileDialog = types.SimpleNamespace(getExistingDirectory=_dialog)
    qt.QSettings = functools.partial(Settings, {})  # one store per set of stand-ins, like one Slicer profile
    vtk = types.ModuleType("vtk")
    vtk.vtkMatrix4x4, vtk.VTK_UNSIGNED_CHAR = Matrix4x4, 3
    vtk.vtkCommand = types.SimpleNamespace(ModifiedEvent=33)
    vtk_util = types.ModuleType("vtk.util")
    vtk_util.numpy_support = types.SimpleNamespace(vtk_to_numpy=lambda scalars: scalars.values)
    vtk.util = vtk_util
    return {"slicer": slicer, "slicer.util": util, "slicer.parameterNodeWrapper": pnw,
            "slicer.ScriptedLoadableModule": slm, "slicer.i18n": i18n, "qt": qt, "vtk": vtk, "vtk.util": vtk_util}


class Settings:
    """``qt.QSettings``: ``value(key, default)`` / ``setValue(key, value)`` over a store shared by its instances."""

    def __init__(self, store: dict) -> None:
        self.store = store

    def value(self, key, default=None):
        return self.store.get(key, default)

    def setValue(self, key, value) -> None:
        self.store[key] = value


def unload() -> None:
    """Forget the Slicer-bound modules imported over the stand-ins."""
    for name in [n for n in sys.modules if n == "PGESAM" or n.startswith("PGESAMSlicerLib")]:
        del sys.modules[name]


def load(monkeypatch, module: str = "PGESAMSlicerLib.logic") -> types.ModuleType:
    """Install the stand-ins (undone by ``monkeypatch``; call :func:`unload` after the test), a new scene, and
    import ``module`` of the Slicer module afresh (e.g. ``"PGESAM"``, ``"PGESAMSlicerLib.logic"``)."""
    global SCENE
    SCENE = Scene()
    monkeypatch.setattr(sys, "path", [str(MODULE_DIR)] + [p for p in sys.path if p != str(MODULE_DIR)])
    for name, fake in fake_modules().items():
        monkeypatch.setitem(sys.modules, name, fake)
    unload()
    return importlib.import_module(module)


def scene() -> Scene:
    """The scene :func:`load` made."""
    return SCENE


def start(logic_module, interaction, voxels, ijk_to_ras, monkeypatch):
    """A ``PGESAMLogic`` whose session runs ``interaction`` (its model or session factory is kept: ``use_model``
    does nothing) on a new volume node (``voxels`` (K, J, I), ``ijk_to_ras``) writing into a new segmentation, as the
    widget starts it. Returns (logic, volume node, segmentation node, startSession's notice)."""
    volume, segmentation = SCENE.add(VolumeNode(voxels, ijk_to_ras)), SCENE.add(SegmentationNode())
    logic = logic_module.PGESAMLogic()
    logic.interaction = interaction
    monkeypatch.setattr(interaction, "use_model", lambda *args: None)
    notice = logic.startSession(volume, segmentation, "sam_tiny", "cpu")
    return logic, volume, segmentation, notice


def place(logic, include, position_ras, slice_to_ras):
    """What the widget does on a click in a slice view: the point appears in its list, then the logic gets it."""
    node = logic.markups.node(include, create=True)
    node.AddControlPointWorld(*position_ras)
    return logic.addPoint(node.points[-1], include, SliceNode(slice_to_ras))


def shown(logic, include=True):
    """The voxels (k, j, i) a point list shows, sorted."""
    positions = logic.markups.positions(include)
    return sorted(map(tuple, logic.volume.world_to_index(positions, check=False).tolist())) if positions else []
