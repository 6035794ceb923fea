"""Model picker behaviour: choices with weights presence, loading in a worker, explicit downloads, cache folder."""

from __future__ import annotations

from typing import Callable

from pge_sam.device import cpu_warning

from . import _models as M

GIVEN = "given"  # item data of the entry for a model passed to the widget


class ModelPanel:
    """Drives the model group of the widget's panel ``ui``. Models load in a worker; nothing downloads unasked.

    It talks to the widget only through ``jobs``, ``controller`` and three
    callbacks: ``report(text, error)``, ``use(model)`` (segment with it from
    now on) and ``failed(exception)``. ``given``: a model (or session factory)
    passed to the widget, listed first.
    """

    def __init__(self, ui, jobs, controller, report: Callable[[str, bool], None], use: Callable[[object], None],
                 failed: Callable[[Exception], None], given=None) -> None:
        self.ui, self.jobs, self.controller = ui, jobs, controller
        self.report, self.use, self.failed = report, use, failed
        ui.cache_dir.setText(M.read_cache_dir_setting())
        ui.cache_dir.setPlaceholderText(f"default: {M.default_cache_dir()}")
        self.choices: list[M.ModelChoice] = []
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

    # -- choices ------------------------------------------------------------------------------------------
    def refresh_choices(self, select_default: bool = False) -> None:
        """Re-read which weights are present (in the cache folder for the ViT models) and relabel the picker."""
        current = self.ui.model.currentData()
        self.choices = M.model_choices(self.cache_dir)
        given = [(self.ui.model.itemText(i), GIVEN) for i in range(self.ui.model.count())
                 if self.ui.model.itemData(i) == GIVEN]
        self.ui.model.blockSignals(True)
        self.ui.model.clear()
        for text, data in given:
            self.ui.model.addItem(text, data)
        for choice in self.choices:
            self.ui.model.addItem(choice.label(), choice.name)
        target = M.default_choice(self.choices).name if select_default or current is None else current
        self.ui.model.setCurrentIndex(max(0, self.ui.model.findData(target)))
        self.ui.model.blockSignals(False)

    @property
    def cache_dir(self) -> str:
        return self.ui.cache_dir.text().strip()

    def current(self) -> M.ModelChoice | None:
        name = self.ui.model.currentData()
        return next((c for c in self.choices if c.name == name), None)

    def device_note(self, device) -> None:
        self.ui.device_note.setText(cpu_warning(device) or "")

    def _choice_changed(self) -> None:
        choice = self.current()
        self.ui.download.setEnabled(choice is not None and choice.official and not choice.present)
        loaded = self.controller.model
        if choice is not None and loaded is not None and getattr(loaded, "name", None) != choice.name:
            self.report(f"press 'Load model' to switch to {choice.name}", False)

    def _cache_changed(self) -> None:
        stored = M.write_cache_dir_setting(self.cache_dir)
        self.refresh_choices()
        self._choice_changed()
        where = "saved in the plugin settings" if stored else "used for this session"
        self.report(f"cache folder {self.cache_dir or M.default_cache_dir()} ({where})", False)

    def _device_changed(self, device: str) -> None:
        self.device_note("cpu" if device == "cpu" else None)
        if self.controller.has_model:
            self.report(f"press 'Load model' to move the model to {device}", False)

    # -- actions ------------------------------------------------------------------------------------------
    def load(self, force: bool = False) -> None:
        """Load the chosen model in a worker (``force``: even if a model is already in use)."""
        if self.jobs.busy("model") or (self.controller.has_model and not force):
            return
        if self.ui.model.currentData() == GIVEN:
            return self.report("using the model given to the widget", False)
        if self.jobs.busy("propagate", "precompute"):
            return self.report("wait for the running job (or Cancel it) before switching models", True)
        name, device = self.current().name, self.ui.device.currentText()
        checkpoint, cache = self.ui.checkpoint.text().strip() or None, self.cache_dir or None
        self.report(f"loading {name} on {device} ...", False)
        self.jobs.start("model", lambda: M.load_model(name, device, checkpoint, cache), self._loaded, self.failed,
                        keep=True)

    def _loaded(self, model) -> None:
        self.device_note(getattr(model, "device", "cpu"))
        self.use(model)

    def download(self) -> None:
        """Download the chosen official checkpoint into the cache folder (explicit request; sha256 checked)."""
        choice = self.current()
        if choice is None or not choice.official:
            return self.report("only official ViT checkpoints can be downloaded; tiny weights ship with pge-sam", True)
        if self.jobs.busy("download"):
            return
        cache = self.cache_dir or None
        self.report(f"downloading the {choice.backbone} checkpoint ...", False)
        self.jobs.start("download", lambda: M.download_official(choice.backbone, cache), self._downloaded,
                        self.failed, keep=True)

    def _downloaded(self, path) -> None:
        self.refresh_choices()
        self._choice_changed()
        self.report(f"{path} downloaded (sha256 verified); press 'Load model'", False)
