"""Slicer-bound logic of the PGESAM module: the parameter node, and session verbs whose result goes into segments.

:meth:`PGESAMLogic.startSession` puts a volume node into the core's ``pge_sam.interaction.Interaction`` (shared with
napari; it keeps the models and the loaded embeddings across sessions). Each verb maps world RAS prompts to voxels
(``PGESAMLib.geometry.VolumeGeometry``; the view's axis becomes the slicing axis), runs the interaction's verb,
redraws the point lists from the session's prompts (so they always agree with undo) and writes the changed box
into the segment "PGE-SAM n" of object n. Node conversions are in :mod:`PGESAMSlicerLib.nodes`. ``pge_sam`` (and
torch) is imported only when a session starts.
"""

from functools import partialmethod
from typing import Annotated

import numpy as np

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from PGESAMLib import DEVICE_CHOICES, MODEL_CHOICES, deps, regions

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
    """MRML nodes -> ``Interaction`` verbs -> changed regions written into segments. Never opens dialogs.
    The prompt verbs, ``undo``, ``clear`` and ``propagate`` return the core ``Change`` (``None``: nothing changed)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.interaction = None  # pge_sam.interaction.Interaction, made by the first startSession
        self.cacheDir = None  # weights folder of the ViT models; None: $PGE_SAM_CACHE_DIR or the OS cache
        self.markups = nodes.PointLists(self.getParameterNode)
        self.volume = self.volumeNode = self.segmentationNode = self.sessionKey = None
        self.segmentIds = {}  # label id -> segment id

    def getParameterNode(self):
        return PGESAMParameterNode(super().getParameterNode())

    def startSession(self, volumeNode, segmentationNode, modelName=MODEL_CHOICES[0], device="auto"):
        """Start a session on ``volumeNode`` writing into ``segmentationNode`` (the model is built once).
        ``sessionKey`` is then (the nodes' ids, model, device). Returns why embeddings loaded for an earlier volume
        are not used for this one, or ``None``."""
        if volumeNode is None or segmentationNode is None:
            raise ValueError("Select an input volume and a segmentation first.")
        missing = deps.missing_requirements()
        if missing:
            raise deps.MissingDependenciesError(missing)
        from pge_sam.interaction import Interaction

        interaction = self.interaction = self.interaction or Interaction()
        interaction.use_model(modelName, device, self.cacheDir)
        volume = nodes.volumeGeometry(volumeNode)
        nodes.fitSegmentation(segmentationNode, volumeNode)
        voxels = np.array(slicer.util.arrayFromVolume(volumeNode))  # (K, J, I) copy, safe from VTK reallocation
        interaction.set_image(voxels, np.zeros(volume.shape_kji, np.uint16), spacing=volume.spacing_zyx)
        interaction.set_axis(0)
        store = interaction.embeddings
        interaction.ensure_session()  # attaches the embeddings loaded for earlier volumes, if they fit
        self.volume, self.volumeNode, self.segmentationNode, self.segmentIds = volume, volumeNode, segmentationNode, {}
        self.sessionKey = (volumeNode.GetID(), segmentationNode.GetID(), modelName, device)
        if store is not None and interaction.embeddings is None:
            return f"The embeddings in {store} were made for another volume, model or normalisation: not used."
        return None

    def weightsStatus(self, modelName):
        """(what ``modelName`` still needs on disk, or ``None``; whether 'Download weights' fetches its checkpoint).
        Tiny models ship with pge-sam: answered without importing it."""
        if modelName.endswith("_tiny"):
            return None, False
        from pge_sam.model_files import model_files

        files = model_files(modelName, self.cacheDir)
        return files.missing(), files.needs_download

    def downloadWeights(self, modelName, progress=None):
        """Download (sha256 checked) the official SAM checkpoint ``modelName`` needs into the cache folder; returns
        what is then still missing, or that the model is ready. ``progress``: MiB, cancellable (nothing kept)."""
        from pge_sam.model_files import download_missing

        return download_missing(modelName, self.cacheDir, progress)

    def endSession(self):
        """Drop the session, its prefetches and the voxels (models and loaded embeddings stay)."""
        if self.interaction is not None:
            self.interaction.detach()
        self.sessionKey = None

    def hasPrompts(self):
        """Whether the session holds a prompt (then precompute follows the last prompt's axis)."""
        return self.sessionKey is not None and bool(self.interaction.prompts())

    def _session(self, sliceNode=None):
        """The interaction, after checking the nodes still fit it (same transform, shape and voxel size);
        ``sliceNode``: slice along the axis that view shows."""
        if self.sessionKey is None:
            raise RuntimeError("No PGE-SAM session: select a volume and a segmentation, then place a prompt.")
        if self.segmentationNode.GetTransformNodeID() != self.volumeNode.GetTransformNodeID():
            raise RuntimeError("The segmentation is no longer under the volume's transform; "
                               "put both under the same transform.")
        self.volume = self.volume.moved_to(nodes.volumeGeometry(self.volumeNode))  # a rigid move only
        if sliceNode is not None:
            self.interaction.set_axis(self.volume.view_axis(nodes.sliceToRas(sliceNode)))  # oblique: refused
        return self.interaction

    # -- verbs ---------------------------------------------------------------------------------------------------
    def addPoint(self, positionWorld, include, sliceNode):
        """Add an include/exclude point (world RAS, mm) clicked in ``sliceNode``."""
        return self._run(lambda: self._session(sliceNode).add_point(
            tuple(self.volume.world_to_index(positionWorld)[0]), bool(include))).change

    def addBox(self, roiNode, sliceNode=None):
        """Add the ROI as a box prompt on the slice through its centre (the view's axis, else its thinnest)."""
        def verb():
            interaction = self._session()
            axis, lo, hi = self.volume.box_in_view(nodes.roiCorners(roiNode), nodes.sliceToRas(sliceNode))
            interaction.set_axis(axis)
            return interaction.add_box(lo, hi)
        return self._run(verb).change

    def _edit(self, verb, *args):
        return self._run(lambda: getattr(self._session(), verb)(*args)).change

    undo = partialmethod(_edit, "undo")  # the last prompt, propagation or clear
    otherMask = partialmethod(_edit, "other_mask")  # the model's next mask for a first click (whole, part, ...)
    clear = partialmethod(_edit, "clear")  # the current object's prompts and voxels go (undoable)
    propagate = partialmethod(_edit, "propagate")  # (progress=None) along the session axis; a cancel keeps what is done

    def nextSegment(self):
        """Start a new object; returns the id of its (new, empty) segment."""
        label = self._run(lambda: self._session().next_object()).label
        return nodes.segmentFor(self.segmentationNode, self.segmentIds, label)

    def precompute(self, progress=None, sliceNode=None):
        """Encode every slice along the axis ``sliceNode`` shows (default: the session axis); returns the count.
        A cancel raises the core's ``Cancelled``; slices already encoded stay cached."""
        return self._session(sliceNode).precompute(progress)

    def saveEmbeddings(self, folder, progress=None, sliceNode=None):
        """Save every slice's embedding along that axis into ``folder``; returns the message."""
        return self._session(sliceNode).save_embeddings(folder, progress)

    def loadEmbeddings(self, folder):
        """Use the embeddings in ``folder`` now and in later sessions (refused, naming what differs, when made for
        another volume, model or normalisation); returns the message."""
        return self._session().load_embeddings(folder)

    def _run(self, verb):
        """``verb()`` -> the core ``Update``; then the point lists show the session's points (a refused point goes
        too) and the changed box is written into the segments (a label gets a segment once it has voxels)."""
        try:
            update = verb()
        finally:
            if self.sessionKey is not None:
                self.markups.show(self.volume, self.interaction.current_points)
        bbox = regions.bbox_from_change(update.change, self.volume.shape_kji)
        plan = None if bbox is None else regions.plan_region_update(self.interaction.labels, bbox, update.labels)
        if plan is not None:
            segmentIds = {label: nodes.segmentFor(self.segmentationNode, self.segmentIds, label)
                          for label, mask in plan.masks.items() if label in self.segmentIds or mask.any()}
            nodes.writeRegion(self.volumeNode, self.segmentationNode, plan, segmentIds)
        return update
