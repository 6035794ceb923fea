"""PGE-SAM for 3D Slicer: click-based Segment-Anything segmentation written into a segmentation node.

This file is the module's entry point (Module and Widget classes). It imports
``slicer``, ``qt`` and ``vtk`` and runs inside Slicer only. Layers:

* ``PGESAMSlicerLib.logic``: ``PGESAMParameterNode`` and ``PGESAMLogic`` (MRML
  nodes -> core session calls -> changed region written into the segment),
  over ``PGESAMSlicerLib.nodes`` (MRML nodes <-> arrays);
* ``PGESAMSlicerLib.moduleTest``: ``PGESAMTest``, the in-Slicer tests;
* ``PGESAMLib``: pure numpy geometry, region, dependency and progress
  helpers, tested outside Slicer (the files above run there over stand-ins of
  Slicer's modules: ``tests/slicer_fakes.py``).

The ``pge_sam`` core (and torch) is imported only when a session starts, so the
module loads before its dependencies are installed. Long work (precompute,
propagate) runs on the main thread, with events processed on every progress
update so the bar repaints and Cancel works; MRML is not thread-safe.
"""

import logging
import traceback

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from PGESAMLib import SHORTCUTS, deps, geometry, shortcut_hint
from PGESAMLib.progress import ProgressRelay
from PGESAMSlicerLib.logic import PGESAMLogic, PGESAMParameterNode  # noqa: F401
from PGESAMSlicerLib.moduleTest import PGESAMTest  # noqa: F401  (Slicer looks up <Module>Test in this module)

CACHE_DIR_SETTING = "PGESAM/cacheDir"  # Slicer setting: the weights folder of the ViT models ("" = the default)


class PGESAM(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PGE-SAM")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Markups", "Segmentations"]
        self.parent.contributors = ["PGE-SAM developers (PGE-SAM project)"]
        self.parent.helpText = _(
            "Interactive segmentation with Segment-Anything models that stay accurate on degraded scans. "
            "Place include/exclude points or an ROI box in the Red, Yellow or Green view; the result is written "
            "into the selected segmentation. See <a href='https://github.com/pge-sam/pge-sam'>the project page</a>.")
        self.parent.acknowledgementText = _("Built on Segment Anything (Meta AI) and 3D Slicer.")
        self.versionProblem = deps.version_problem((slicer.app.majorVersion, slicer.app.minorVersion))
        if self.versionProblem:  # shown at load; the panel stays disabled
            self.parent.helpText = self.versionProblem + "<br><br>" + self.parent.helpText
        from PGESAMSlicerLib import sampleData

        slicer.app.connect("startupCompleted()", sampleData.registerSampleData)


class PGESAMWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: node selectors, prompt placement, model/device, actions, progress."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._shortcuts = []
        self._observed = []  # (node, event) pairs observed for prompts
        self._progress = None
        self._missing = None  # cached deps.missing_requirements(); refreshed on enter and after installing

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PGESAM.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        problem = deps.version_problem((slicer.app.majorVersion, slicer.app.minorVersion))
        if problem:
            self.ui.statusLabel.text = problem
            uiWidget.enabled = False
            return
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = PGESAMLogic()
        for placeWidget in (self.ui.includePlaceWidget, self.ui.excludePlaceWidget):
            placeWidget.setMRMLScene(slicer.mrmlScene)
            placeWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
            placeWidget.buttonsVisible = False
            placeWidget.placeButton().show()
        self.ui.shortcutsLabel.text = shortcut_hint()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.ui.downloadWeightsButton.connect("clicked(bool)", self.onDownloadWeights)
        self.logic.cacheDir = str(qt.QSettings().value(CACHE_DIR_SETTING, "") or "") or None
        self.ui.cacheDirPathLineEdit.currentPath = self.logic.cacheDir or ""
        self.ui.cacheDirPathLineEdit.connect("currentPathChanged(QString)", self.onCacheDirChanged)
        self.ui.precomputeButton.connect("clicked(bool)", self.onPrecompute)
        self.ui.propagateButton.connect("clicked(bool)", self.onPropagate)
        self.ui.nextSegmentButton.connect("clicked(bool)", self.onNextSegment)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.otherMaskButton.connect("clicked(bool)", self.onOtherMask)
        self.ui.clearButton.connect("clicked(bool)", self.onClear)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.saveEmbeddingsButton.connect("clicked(bool)", self.onSaveEmbeddings)
        self.ui.loadEmbeddingsButton.connect("clicked(bool)", self.onLoadEmbeddings)
        self.ui.cancelButton.enabled = False
        self._createShortcuts()
        self.initializeParameterNode()

    def cleanup(self):
        self._deleteShortcuts()
        self.removeObservers()

    def enter(self):
        self._missing = None
        self.initializeParameterNode()
        self._enableShortcuts(True)

    def exit(self):
        self._enableShortcuts(False)
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.logic.endSession()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None):
        p = self._parameterNode
        for node, eventId, method in self._observed:
            self.removeObserver(node, eventId, method)
        self._observed = []
        if p is None:
            return
        self.ui.includePlaceWidget.setCurrentNode(p.includePoints)
        self.ui.excludePlaceWidget.setCurrentNode(p.excludePoints)
        for node in (p.includePoints, p.excludePoints):
            if node:
                self._observe(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointDefined)
        if p.boxRoi:
            for eventId in (slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                            slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent):
                self._observe(p.boxRoi, eventId, self._onRoiChanged)
        if self.logic.sessionKey is not None and self.logic.sessionKey != self._sessionKey():
            self.logic.endSession()  # inputs, model or device changed: the next prompt starts afresh
        ready = bool(p.inputVolume and p.segmentation)
        for button in (self.ui.precomputeButton, self.ui.propagateButton, self.ui.nextSegmentButton,
                       self.ui.undoButton, self.ui.otherMaskButton, self.ui.clearButton, self.ui.saveEmbeddingsButton,
                       self.ui.loadEmbeddingsButton):
            button.enabled = ready and self._progress is None
        self.ui.downloadWeightsButton.enabled = self._progress is None and self._weightsStatus()[1]
        self._updateStatus()

    def _observe(self, node, eventId, method):
        self.addObserver(node, eventId, method)
        self._observed.append((node, eventId, method))

    def _sessionKey(self):
        p = self._parameterNode
        ids = tuple(n.GetID() if n else None for n in (p.inputVolume, p.segmentation))
        return ids + (p.modelName, p.device)

    def _weightsStatus(self):
        """The logic's answer for the chosen model; ``(None, False)`` while dependencies are missing."""
        if self._missingRequirements() or self._parameterNode is None:
            return None, False
        return self.logic.weightsStatus(self._parameterNode.modelName)

    def _missingRequirements(self):
        """``deps.missing_requirements()``, cached until ``enter`` or an install clears it."""
        if self._missing is None:
            self._missing = deps.missing_requirements()
        return self._missing

    def _updateStatus(self, message=None):
        p = self._parameterNode
        missing = self._missingRequirements()
        self.ui.installDependenciesButton.enabled = bool(missing)
        if message is None:
            if missing:
                message = _("Dependencies missing ({names}): click 'Install dependencies'.").format(
                    names=", ".join(r.distribution for r in missing))
            elif problem := self._weightsStatus()[0]:
                message = problem
            elif p is None or not (p.inputVolume and p.segmentation):
                message = _("Select an input volume and a segmentation.")
            else:
                message = _("Ready: place include/exclude points in a slice view.")
                if p.device == "cpu" or (p.device == "auto" and not deps.cuda_driver_present()):
                    message += " " + _("Running on CPU: encoding a slice takes seconds; Precompute first.")
        self.ui.statusLabel.text = message

    def _ensureSession(self):
        if self.logic.sessionKey is not None and self.logic.sessionKey == self._sessionKey():
            return
        missing = deps.missing_requirements()
        if missing and not self.onInstallDependencies():
            raise deps.MissingDependenciesError(missing)
        p = self._parameterNode
        with slicer.util.WaitCursor():
            notice = self.logic.startSession(p.inputVolume, p.segmentation, p.modelName, p.device)
        if notice:  # embeddings loaded for an earlier volume do not fit this one
            logging.warning(notice)
            self._updateStatus(notice)

    # -- prompts -----------------------------------------------------------------------------
    def _sliceNodeForPoint(self, positionWorld, required=True):
        layoutManager = slicer.app.layoutManager()
        widgets = {}
        for name in layoutManager.sliceViewNames():
            sliceWidget = layoutManager.sliceWidget(name)
            if sliceWidget is not None and sliceWidget.isVisible():
                widgets[name] = sliceWidget
        views = {n: slicer.util.arrayFromVTKMatrix(w.mrmlSliceNode().GetSliceToRAS()) for n, w in widgets.items()}
        names = geometry.views_containing_point(positionWorld, views)
        if len(names) > 1:  # on the intersection of two views: prefer the one under the mouse
            names = [n for n in names if widgets[n].sliceView().underMouse()] or names
        if not names:
            if required:
                raise geometry.GeometryError("Place prompts in the Red, Yellow or Green slice view, not in 3D.")
            return None
        return widgets[names[0]].mrmlSliceNode()

    def _busy(self):
        """True (and says so) while precompute/propagate runs: prompts then would re-enter the session."""
        if self._progress is not None:
            self._updateStatus(_("Busy: wait for the running task to finish or cancel it."))
        return self._progress is not None

    def _onPointDefined(self, caller, event):
        if self.logic.markups.syncing:  # the logic is redrawing the lists from the session's prompts
            return
        index = caller.GetNumberOfControlPoints() - 1
        if self._busy():
            caller.RemoveNthControlPoint(index)
            return
        position = [0.0, 0.0, 0.0]
        caller.GetNthControlPointPositionWorld(index, position)
        includeNode = self._parameterNode.includePoints
        include = includeNode is not None and caller.GetID() == includeNode.GetID()
        try:
            with slicer.util.tryWithErrorDisplay(_("Could not start a session."), waitCursor=True):
                self._ensureSession()
            with slicer.util.tryWithErrorDisplay(_("Could not use this point.")):
                sliceNode = self._sliceNodeForPoint(position)
        except Exception:
            caller.RemoveNthControlPoint(index)  # no session, or placed in 3D: the point is no prompt
            return
        # A point the session refuses disappears: the lists are redrawn from the session's prompts.
        with slicer.util.tryWithErrorDisplay(_("Could not use this point."), waitCursor=True):
            change = self.logic.addPoint(position, include, sliceNode)
            self._updateStatus(_("Segment 'PGE-SAM {label}' updated.").format(label=change.label))

    def _onRoiChanged(self, caller, event):
        if self._busy():
            return
        center = [0.0, 0.0, 0.0]
        caller.GetCenterWorld(center)
        with slicer.util.tryWithErrorDisplay(_("Could not use this box."), waitCursor=True):
            self._ensureSession()
            change = self.logic.addBox(caller, self._sliceNodeForPoint(center, required=False))
            self._updateStatus(_("Segment 'PGE-SAM {label}' updated.").format(label=change.label))

    def placeIncludePoints(self):
        """Start placing include points (shortcut I)."""
        self._startPlacing(True)

    def placeExcludePoints(self):
        """Start placing exclude points (shortcut E)."""
        self._startPlacing(False)

    def _startPlacing(self, include):
        p = self._parameterNode
        if p is None or self._busy():
            return
        self.logic.markups.node(include, create=True)
        (self.ui.includePlaceWidget if include else self.ui.excludePlaceWidget).setPlaceModeEnabled(True)

    # -- actions -----------------------------------------------------------------------------
    def onInstallDependencies(self):
        """Ask, then install through the PyTorch extension and pip in a worker with a progress dialog."""
        from PGESAMSlicerLib import install

        ok = install.installDependencies(parent=self.parent)
        self._missing = None
        self._updateStatus()
        return ok

    def onUndo(self):
        if self._busy():
            return
        with slicer.util.tryWithErrorDisplay(_("Undo failed.")):
            self.logic.undo()  # the point lists then show the session's prompts again

    def onOtherMask(self):
        """Show the model's next mask for the first click on a slice (whole, part, sub-part; Undo goes back)."""
        if self._busy():
            return
        with slicer.util.tryWithErrorDisplay(_("No other mask.")):
            self.logic.otherMask()

    def onClear(self):
        if self._busy():
            return
        with slicer.util.tryWithErrorDisplay(_("Clear failed.")):
            self.logic.clear()

    def onNextSegment(self):
        if self._busy():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start a new segment.")):
            self._ensureSession()
            segmentId = self.logic.nextSegment()
            name = self.logic.segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
            self._updateStatus(_("Now segmenting '{name}'.").format(name=name))

    def _encodingView(self):
        """Before the first prompt, encode along the axis the Red view shows; later, along the last prompt's axis."""
        return slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed") if not self.logic.hasPrompts() else None

    def onPrecompute(self):
        self._runLong(lambda progress: self.logic.precompute(progress, self._encodingView()),
                      _("Precomputing embeddings failed."))

    def onSaveEmbeddings(self):
        """Save every slice's embedding into a folder (main thread, progress bar, Cancel), to load elsewhere."""
        folder = "" if self._busy() else qt.QFileDialog.getExistingDirectory(
            self.parent, _("Save embeddings into a new or empty folder"))
        if folder:
            self._runLong(lambda progress: self.logic.saveEmbeddings(folder, progress, self._encodingView()),
                          _("Saving embeddings failed."))

    def onLoadEmbeddings(self):
        """Use saved embeddings (checked against the volume, model and normalisation) now and in later sessions."""
        folder = "" if self._busy() else qt.QFileDialog.getExistingDirectory(
            self.parent, _("Load embeddings from a folder"))
        if folder:
            with slicer.util.tryWithErrorDisplay(_("Could not load the embeddings."), waitCursor=True):
                self._ensureSession()
                self._updateStatus(self.logic.loadEmbeddings(folder))

    def onCacheDirChanged(self, path):
        """Look ViT weights up (and download them) in ``path`` from now on ("": the default); kept in the settings.
        A model already built keeps its weights (ctkPathLineEdit signals every valid path typed on the way)."""
        path = str(path or "").strip()
        if (path or None) == self.logic.cacheDir:
            return
        qt.QSettings().setValue(CACHE_DIR_SETTING, path)
        self.logic.cacheDir = path or None
        self._onParameterNodeModified()  # the download button and the status follow the folder

    def onDownloadWeights(self):
        """Download the chosen model's official SAM checkpoint (progress bar in MiB; Cancel keeps nothing)."""
        name = self._parameterNode.modelName
        self._runLong(lambda progress: self.logic.downloadWeights(name, progress), _("Download failed."),
                      session=False)

    def onPropagate(self):
        self._runLong(self.logic.propagate, _("Propagation failed."))

    def onCancel(self):
        if self._progress is not None:
            self._progress.cancel()

    def _runLong(self, action, failureMessage, session=True):
        """Run a long core call on the main thread (``session``: in the session, started first); the relay
        repaints the bar and sees Cancel."""
        if self._busy():
            return
        try:
            if session:
                self._ensureSession()
        except Exception as exc:
            slicer.util.errorDisplay(f"{failureMessage}\n\n{exc}")
            return
        self._progress = ProgressRelay(self._onProgress, slicer.app.processEvents)
        self.ui.cancelButton.enabled = True
        self._onParameterNodeModified()
        message = None  # shown after the panel is re-enabled (which shows the default status)
        try:
            result = action(self._progress)
            message = result if isinstance(result, str) else _("Done.")  # a message from the core, else "Done."
        except Exception as exc:
            if not self._progress.cancel_requested:
                logging.error(traceback.format_exc())
                slicer.util.errorDisplay(f"{failureMessage}\n\n{exc}", detailedText=traceback.format_exc())
        finally:
            cancelled, self._progress = self._progress.cancel_requested, None
            self.ui.cancelButton.enabled = False
            self.ui.progressBar.value = 0
            self._onParameterNodeModified()
        if cancelled or message:
            self._updateStatus(_("Cancelled.") if cancelled else message)

    def _onProgress(self, done, total):
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done

    # -- keyboard shortcuts ------------------------------------------------------------------
    def _createShortcuts(self):
        """One QShortcut per ``PGESAMLib.SHORTCUTS`` entry, parented to this module's panel.

        Qt's default window context makes a shortcut fire wherever the focus is in the main
        window (a slice view included), but only while its parent widget is visible, i.e. while
        the PGE-SAM panel is shown. They are also disabled in ``exit``. None of the keys is one
        that Slicer binds (``PGESAMLib.SLICER_RESERVED_KEYS``), so no Slicer shortcut is replaced.
        """
        self._deleteShortcuts()
        for entry in SHORTCUTS:
            shortcut = qt.QShortcut(self.parent)
            shortcut.setKey(qt.QKeySequence(entry.key))
            shortcut.setEnabled(False)
            callback = getattr(self, entry.method)
            shortcut.connect("activated()", callback)
            self._shortcuts.append((shortcut, callback))

    def _enableShortcuts(self, enabled):
        for shortcut, _callback in self._shortcuts:
            shortcut.setEnabled(enabled)

    def _deleteShortcuts(self):
        for shortcut, callback in self._shortcuts:
            shortcut.disconnect("activated()", callback)
            shortcut.setParent(None)
            shortcut.deleteLater()
        self._shortcuts = []
