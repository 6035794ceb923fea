"""The model group of the widget: a picker showing which weights are present, loading in a worker, explicit
downloads, the cache folder. Which files a model needs is :mod:`pge_sam.model_files`'s answer."""

from __future__ import annotations

from typing import Callable

from pge_sam.device import cpu_warning
from pge_sam.model_files import ModelFiles, default_choice, download_official, list_model_files, resolve_cache_dir

from . import _models as M

GIVEN = "given"  # item data of the entry for a model passed to the widget


class ModelPanel:
    """Drives the model group of the panel ``ui``; talks to the widget only through ``jobs``, ``controller`` (a
    :class:`pge_sam.interaction.Interaction`) and three callbacks: ``report(text, error)``, ``use(model)``
    and ``failed(exception)``. ``given``: a model (or session factory) passed to the widget, listed first."""

    def __init__(self, ui, jobs, controller, report: Callable[[str, bool], None], use: Callable[[object], None],
                 failed: Callable[[Exception], None], given=None) -> None:
        self.ui, self.jobs, self.controller = ui, jobs, controller
        self.report, self.use, self.failed = report, use, failed
        ui.cache_dir.setText(M.read_cache_dir_setting())
        ui.cache_dir.setPlaceholderText(f"default: {resolve_cache_dir(None)}")
        self.choices: list[ModelFiles] = []
        self.refresh_choices(select_default=True)
        if given is not None:
            name = getattr(given, "name", None) or getattr(getattr(given, "func", given), "__name__", "model")
            ui.model.insertItem(0, f"{name} (given)", GIVEN)
            ui.model.setCurrentIndex(0)
            self.device_note(getattr(given, "device", "cpu"))
        ui.load.clicked.connect(lambda _=False: self.load(force=True))
        ui.download.clicked.connect(lambda _=False: self.download())
        ui.model.currentIndexChanged.connect(lambda _: self._choice_changed())
        ui.cache_dir.editingFinished.connect(self._cache_changed)
        ui.device.currentTextChanged.connect(self._device_changed)
        self._choice_changed()

    @property
    def cache_dir(self) -> str:
        return self.ui.cache_dir.text().strip()

    def current(self) -> ModelFiles | None:
        return next((c for c in self.choices if c.name == self.ui.model.currentData()), None)

    def refresh_choices(self, select_default: bool = False) -> None:
        """Re-read which weights are present (the ViT ones in the cache folder) and relabel the picker."""
        picker, current = self.ui.model, self.ui.model.currentData()
        given = [(picker.itemText(i), GIVEN) for i in range(picker.count()) if picker.itemData(i) == GIVEN]
        self.choices = list_model_files(self.cache_dir)
        picker.blockSignals(True)
        picker.clear()
        for text, data in given + [(c.label(), c.name) for c in self.choices]:
            picker.addItem(text, data)
        target = default_choice(self.choices).name if select_default or current is None else current
        picker.setCurrentIndex(max(0, picker.findData(target)))
        picker.blockSignals(False)

    def device_note(self, device) -> None:
        self.ui.device_note.setText(cpu_warning(device) or "")

    def _choice_changed(self) -> None:
        choice, loaded = self.current(), self.controller.model
        self.ui.download.setEnabled(choice is not None and choice.downloadable and not choice.present)
        if choice is not None and loaded is not None and getattr(loaded, "name", None) != choice.name:
            self.report(f"press 'Load model' to switch to {choice.name}", False)

    def _cache_changed(self) -> None:
        where = "saved in the plugin settings" if M.write_cache_dir_setting(self.cache_dir) else "used for this session"
        self.refresh_choices()
        self._choice_changed()
        self.report(f"cache folder {self.cache_dir or resolve_cache_dir(None)} ({where})", False)

    def _device_changed(self, device: str) -> None:
        self.device_note("cpu" if device == "cpu" else None)
        if self.controller.has_model:
            self.report(f"press 'Load model' to move the model to {device}", False)

    def load(self, force: bool = False) -> None:
        """Load the chosen model in a worker (``force``: even if a model is already in use)."""
        if self.jobs.busy("model") or (self.controller.has_model and not force):
            return
        if self.ui.model.currentData() == GIVEN:
            return self.report("using the model given to the widget", False)
        problem = self.controller.refusal("model", self.jobs.running)
        if problem is not None:
            return self.report(problem, True)
        name, device = self.current().name, self.ui.device.currentText()
        checkpoint, cache = self.ui.checkpoint.text().strip() or None, self.cache_dir or None
        self.report(f"loading {name} on {device} ...", False)
        self.jobs.start("model", lambda: M.load_model(name, device, checkpoint, cache), self.use, self.failed,
                        keep=True)

    def download(self) -> None:
        """Download the chosen official checkpoint into the cache folder (explicit request; sha256 checked)."""
        choice, cache = self.current(), self.cache_dir or None
        if choice is None or not choice.downloadable:
            return self.report("only official SAM checkpoints can be downloaded; tiny weights ship with pge-sam", True)
        if not self.jobs.busy("download"):
            self.report(f"downloading the {choice.backbone} checkpoint ...", False)
            self.jobs.start("download", lambda: download_official(choice.backbone, cache), self._downloaded,
                            self.failed, keep=True)

    def _downloaded(self, path) -> None:
        self.refresh_choices()
        self._choice_changed()
        self.report(f"{path} downloaded (sha256 verified); press 'Load model'", False)
