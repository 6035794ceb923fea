"""The model group of the widget (no Qt import: it drives the controls of the widget's panel): a picker showing
which weights are present (:mod:`pge_sam.model_files`'s answer), loading in a worker, explicit downloads, and the
cache folder: the plugin setting ``models.cache_dir`` (napari Preferences > plugin settings; an edit is saved there),
else ``$PGE_SAM_CACHE_DIR`` or the OS cache folder, passed to the core explicitly (never through the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pge_sam.device import cpu_warning
from pge_sam.model_files import ModelFiles, build_model, default_choice, download_missing, list_model_files
from pge_sam.model_files import resolve_cache_dir

from ._compat import avoid_triton_llvm_clash

PLUGIN_NAME = "pge-sam"  # npe2 requires the manifest name to equal the distribution name
GIVEN = "given"  # item data of the entry for a model passed to the widget


def load_model(name: str, device: str = "auto", checkpoint: str | Path | None = None,
               cache_dir: str | Path | None = None):
    """:func:`pge_sam.model_files.build_model` once torchvision can be imported next to napari's OpenGL (slow: run
    it in a worker). Raises :class:`pge_sam.errors.MissingWeightsError` naming the file and how to get it."""
    avoid_triton_llvm_clash()  # before torchvision is imported: see napari_pge_sam._compat
    return build_model(name, checkpoint=checkpoint, device=device, cache_dir=cache_dir)


def _settings():
    """This plugin's ``models`` settings (``None``: napari has no plugin settings, or the plugin is not registered)."""
    try:
        from napari.settings import get_plugin_settings

        return get_plugin_settings(PLUGIN_NAME).models
    except (ImportError, KeyError, AttributeError):
        return None


def read_cache_dir_setting() -> str:
    """The plugin setting ``models.cache_dir`` ("" when unset or when napari has no plugin settings)."""
    return str(getattr(_settings(), "cache_dir", "") or "")


def write_cache_dir_setting(value: str) -> bool:
    """Store ``value`` in the plugin setting ``models.cache_dir``; ``False`` when napari cannot store it."""
    try:
        _settings().cache_dir = str(value)
    except AttributeError:  # no settings (None) or no such field
        return False
    return True


class ModelPanel:
    """Drives the model group of the panel ``ui``; talks to the widget only through ``jobs``, ``controller`` (a
    :class:`pge_sam.interaction.Interaction`) and three callbacks: ``report(text, error)``, ``use(model)``
    and ``failed(exception)``. ``given``: a model (or session factory) passed to the widget, listed first."""

    def __init__(self, ui, jobs, controller, report: Callable[[str, bool], None], use: Callable[[object], None],
                 failed: Callable[[Exception], None], given=None) -> None:
        self.ui, self.jobs, self.controller = ui, jobs, controller
        self.report, self.use, self.failed = report, use, failed
        name = getattr(given, "name", None) or getattr(getattr(given, "func", given), "__name__", "model")
        self.given = None if given is None else f"{name} (given)"  # the picker's first entry
        self.choices: list[ModelFiles] = []
        ui.cache_dir.setText(read_cache_dir_setting())
        ui.cache_dir.setPlaceholderText(f"default: {resolve_cache_dir(None)}")
        self.refresh_choices()
        if given is not None:
            self.device_note(getattr(given, "device", "cpu"))
        ui.load.clicked.connect(lambda _=False: self.load(force=True))
        ui.download.clicked.connect(lambda _=False: self.download())
        ui.model.currentIndexChanged.connect(lambda _: self._choice_changed())
        ui.cache_dir.editingFinished.connect(self._cache_changed)
        ui.device.currentTextChanged.connect(self._device_changed)

    @property
    def cache_dir(self) -> str:
        """The cache folder field ("": ``$PGE_SAM_CACHE_DIR`` or the OS cache folder)."""
        return self.ui.cache_dir.text().strip()

    def current(self) -> ModelFiles | None:
        """The chosen model's files (``None``: the model given to the widget is chosen)."""
        return next((c for c in self.choices if c.name == self.ui.model.currentData()), None)

    def refresh_choices(self) -> None:
        """Re-read which weights are present (the ViT ones in the cache folder) and relabel the picker."""
        picker, chosen = self.ui.model, self.ui.model.currentData()
        self.choices = list_model_files(self.cache_dir)
        picker.blockSignals(True)
        picker.clear()
        if self.given:
            picker.addItem(self.given, GIVEN)
        for choice in self.choices:
            picker.addItem(choice.label(), choice.name)
        chosen = chosen or (GIVEN if self.given else default_choice(self.choices).name)  # first time: the default
        picker.setCurrentIndex(max(0, picker.findData(chosen)))
        picker.blockSignals(False)
        self._choice_changed()

    def device_note(self, device) -> None:
        """Warn under the picker when ``device`` is the CPU."""
        self.ui.device_note.setText(cpu_warning(device) or "")

    def _choice_changed(self) -> None:
        choice, loaded = self.current(), self.controller.model
        self.ui.download.setEnabled(choice is not None and choice.needs_download)
        if choice is not None and loaded is not None and getattr(loaded, "name", None) != choice.name:
            self.report(f"press 'Load model' to switch to {choice.name}", False)

    def _cache_changed(self) -> None:
        where = "saved in the plugin settings" if write_cache_dir_setting(self.cache_dir) else "used for this session"
        self.refresh_choices()
        self.report(f"cache folder {resolve_cache_dir(self.cache_dir)} ({where})", False)

    def _device_changed(self, device: str) -> None:
        self.device_note("cpu" if device == "cpu" else None)
        if self.controller.has_model:
            self.report(f"press 'Load model' to move the model to {device}", False)

    def load(self, force: bool = False) -> None:
        """Load the chosen model in a worker (``force``: even if a model is already in use)."""
        if self.jobs.busy("model") or (self.controller.has_model and not force):
            return
        choice, device = self.current(), self.ui.device.currentText()
        checkpoint, cache = self.ui.checkpoint.text(), self.cache_dir
        problem = self.controller.refusal("model", self.jobs.running)
        if choice is None or problem is not None:
            return self.report(problem or "using the model given to the widget", problem is not None)
        self.report(f"loading {choice.name} on {device} ...", False)
        self.jobs.start("model", lambda: load_model(choice.name, device, checkpoint, cache), self.use, self.failed,
                        keep=True)

    def download(self) -> None:
        """Download the chosen model's missing official checkpoint into the cache folder (explicit request; sha256
        checked; progress in MiB; Cancel keeps nothing)."""
        choice, cache = self.current(), self.cache_dir
        if choice is None:
            return self.report("the model given to the widget has nothing to download", True)
        if not self.jobs.busy("download"):
            self.report(f"downloading the {choice.backbone} checkpoint (Cancel stops it) ...", False)
            self.jobs.start("download", lambda progress: download_missing(choice.name, cache, progress),
                            self._downloaded, self.failed, keep=True, with_progress=True,
                            description=f"pge-sam: downloading {choice.backbone} (MiB)")

    def _downloaded(self, message: str) -> None:
        self.refresh_choices()
        self.report(message, not getattr(self.current(), "present", True))  # red while a file is still missing
