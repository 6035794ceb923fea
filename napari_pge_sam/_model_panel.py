"""Model picker behaviour: choices with weights presence, loading in a worker, explicit downloads, cache folder."""

from __future__ import annotations

from . import _models as M

GIVEN = "given"  # item data of the entry for a model passed to the widget


class ModelPanel:
    """Drives the model group of the widget's panel. Models load in a worker; nothing downloads unasked."""

    def __init__(self, widget, ui, injected: bool) -> None:
        self.widget = widget
        self.ui = ui
        self.owned = None  # a model this panel loaded (its prefetch thread is stopped on release)
        ui.cache_dir.setText(M.read_cache_dir_setting())
        ui.cache_dir.setPlaceholderText(f"default: {M.default_cache_dir()}")
        self.choices: list[M.ModelChoice] = []
        self.refresh_choices(select_default=True)
        if injected:
            model = widget.controller.model
            ui.model.insertItem(0, f"{getattr(model, 'name', None) or type(model).__name__} (given)", GIVEN)
            ui.model.setCurrentIndex(0)
            widget._device_note(getattr(model, "device", "cpu"))
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

    def _choice_changed(self) -> None:
        choice = self.current()
        self.ui.download.setEnabled(choice is not None and choice.official and not choice.present)
        loaded = self.widget.controller.model
        if choice is not None and loaded is not None and getattr(loaded, "name", None) != choice.name:
            self.widget._info(f"press 'Load model' to switch to {choice.name}")

    def _cache_changed(self) -> None:
        stored = M.write_cache_dir_setting(self.cache_dir)
        self.refresh_choices()
        self._choice_changed()
        where = "saved in the plugin settings" if stored else "used for this session"
        self.widget._info(f"cache folder {M.resolve_cache_dir(self.cache_dir)} ({where})")

    def _device_changed(self, device: str) -> None:
        self.widget._device_note("cpu" if device == "cpu" else None)
        if self.widget.controller.model is not None:
            self.widget._info(f"press 'Load model' to move the model to {device}")

    # -- actions ------------------------------------------------------------------------------------------
    def load(self, force: bool = False) -> None:
        """Load the chosen model in a worker (``force``: even if a model is already in use)."""
        jobs = self.widget.jobs
        if jobs.busy("model") or (self.widget.controller.model is not None and not force):
            return
        if self.ui.model.currentData() == GIVEN:
            return self.widget._info("using the model given to the widget")
        if jobs.busy("propagate", "precompute"):
            return self.widget._error("wait for the running job (or Cancel it) before switching models")
        choice = self.current()
        name, device = choice.name, self.ui.device.currentText()
        checkpoint, cache = self.ui.checkpoint.text().strip() or None, self.cache_dir or None
        self.widget._info(f"loading {name} on {device} ...")
        jobs.start("model", lambda: M.load_model(name, device, checkpoint, cache), self.use, self._failed)

    def use(self, model) -> None:
        """Segment with ``model`` from now on (GUI thread); waiting clicks are then applied."""
        previous = self.owned
        self.owned = model
        self.widget._generation += 1  # results of jobs started with the previous model are ignored
        self.widget.controller.set_model(model)
        if previous is not None and previous is not model:
            _close_predictor(previous)
        device = getattr(model, "device", "cpu")
        self.widget._device_note(device)
        self.widget._info(f"model {getattr(model, 'name', type(model).__name__)} ready on {device}")
        self.widget._render()
        self.widget._drain()

    def _failed(self, err: Exception) -> None:
        self.widget._job_failed(err)

    def download(self) -> None:
        """Download the chosen official checkpoint into the cache folder (explicit request; sha256 checked)."""
        choice = self.current()
        if choice is None or not choice.official:
            return self.widget._error("only official ViT checkpoints can be downloaded; tiny weights ship with pge-sam")
        if self.widget.jobs.busy("download"):
            return
        cache = self.cache_dir or None
        self.widget._info(f"downloading the {choice.backbone} checkpoint ...")
        self.widget.jobs.start("download", lambda: M.download_official(choice.backbone, cache),
                               self._downloaded, self._failed)

    def _downloaded(self, path) -> None:
        self.refresh_choices()
        self._choice_changed()
        self.widget._info(f"{path} downloaded (sha256 verified); press 'Load model'")

    def release(self) -> None:
        """Stop the background prefetch thread of the model in use (pending prefetches are dropped)."""
        for model in {id(m): m for m in (self.owned, self.widget.controller.model) if m is not None}.values():
            _close_predictor(model)


def _close_predictor(model) -> None:
    from pge_sam.predictor import predictor_for

    predictor_for(model).close()
