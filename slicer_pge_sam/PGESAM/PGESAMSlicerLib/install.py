"""Installing the module's dependencies after the user agrees, in a worker, with a progress dialog.

Runs a ``PGESAMLib.deps.Plan``:

1. torch/torchvision through the PyTorch extension
   (``PyTorchUtils.PyTorchUtilsLogic().installTorch(torchVersionRequirement=">=2.1", ...)``),
   which picks the build for the NVIDIA driver. Its pip runs in a child process
   whose output Slicer pumps into the GUI, so the dialog keeps repainting.
2. The small pip packages (floors, never ``==``) in a child ``PythonSlicer -m pip install``
   process. A reader thread only moves pip's output lines into a queue; a ``QTimer``
   on the main thread shows them in the dialog. No Qt or MRML call leaves the
   main thread, and Slicer stays responsive; Cancel stops pip.

Entry point for the widget: :func:`installDependencies` (returns True when everything is present); for
scripts: :func:`installWithoutAsking` (no question, no dialog, on the calling thread).
"""

import importlib
import logging
import queue
import shutil
import subprocess
import sys
import threading

import qt

import slicer

from PGESAMLib import deps


def slicerVersion():
    return (slicer.app.majorVersion, slicer.app.minorVersion, getattr(slicer.app, "patchVersion", 0))


def currentPlan():
    """The plan for this Slicer (``deps.plan`` with what is installed and loaded now)."""
    return deps.plan(slicerVersion(), deps.installed_versions(), python_version=sys.version_info[:2],
                     pytorch_extension=deps.pytorch_extension_available(), loaded=list(sys.modules))


class _Dialog:
    """Modal progress dialog with a busy bar, a status line and a Cancel button."""

    def __init__(self, parent=None):
        self.widget = qt.QProgressDialog(parent or slicer.util.mainWindow())
        self.widget.setWindowTitle("PGE-SAM - Installing Python packages")
        self.widget.setWindowModality(qt.Qt.WindowModal)
        self.widget.setMinimumDuration(0)
        self.widget.setRange(0, 0)  # busy: pip reports no overall fraction
        self.widget.setMinimumWidth(520)
        self.widget.show()
        slicer.app.processEvents()

    def status(self, text):
        self.widget.setLabelText(text)

    def cancelled(self):
        return self.widget.wasCanceled

    def close(self):
        self.widget.close()
        self.widget.deleteLater()


def _pythonSlicer():
    path = shutil.which("PythonSlicer")
    if not path:
        raise RuntimeError("PythonSlicer executable not found")
    return path


def runPip(args, dialog, pollMs=100):
    """``PythonSlicer -m pip install ARGS`` in a child process; returns pip's output lines.

    Raises ``subprocess.CalledProcessError`` when pip fails and ``RuntimeError`` when cancelled.
    """
    proc = slicer.util.launchConsoleProcess([_pythonSlicer(), "-m", "pip", "install", *args],
                                            useStartupEnvironment=False)
    lines = queue.Queue()

    def read():  # worker thread: no Qt, no MRML; just pipe -> queue
        for line in iter(proc.stdout.readline, ""):
            lines.put(line.rstrip())
        proc.stdout.close()

    reader = threading.Thread(target=read, name="PGE-SAM pip", daemon=True)
    reader.start()
    log = []
    loop = qt.QEventLoop()
    timer = qt.QTimer()

    def poll():
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            log.append(line)
            logging.info(line)
            status = deps.pip_status(line)
            if status:
                dialog.status(status)
        if dialog.cancelled() and proc.poll() is None:
            proc.terminate()
        if proc.poll() is not None and not reader.is_alive() and lines.empty():
            timer.stop()
            loop.quit()

    timer.timeout.connect(poll)
    timer.start(pollMs)
    loop.exec_()
    if dialog.cancelled():
        raise RuntimeError("The installation was cancelled; nothing else was installed.")
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, output="\n".join(log))
    return log


def installTorch(plan):
    """torch + torchvision through the PyTorch extension, with PGE-SAM's floors (no confirmation: asked before)."""
    import PyTorchUtils

    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, **plan.torch_kwargs())
    if torch is None:
        raise RuntimeError("The PyTorch extension did not install torch; see the Python console for its log.")
    return torch


def installDependencies(parent=None, askConfirmation=True):
    """Ask, then install what ``currentPlan()`` lists, with a progress dialog. Returns True when all is present.

    Shows the plan's problem (Slicer too old, PyTorch extension missing) instead of installing; asks
    for a restart when a replaced package was already loaded.
    """
    plan = currentPlan()
    if plan.problem:
        slicer.util.errorDisplay(plan.problem, windowTitle="PGE-SAM")
        return False
    if plan.ready:
        return True
    cuda = deps.cuda_driver_present()
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(deps.describe_plan(plan, cuda),
                                                                   windowTitle="PGE-SAM"):
        return False
    dialog = _Dialog(parent)
    try:
        if plan.torch:
            dialog.status("Installing PyTorch through the PyTorch extension (this can take several minutes)...")
            installTorch(plan)
        if plan.pip and not dialog.cancelled():
            dialog.status("pip install " + " ".join(plan.pip_args()))
            runPip(plan.pip_args(), dialog)
    except Exception as exc:
        dialog.close()
        logging.exception("PGE-SAM dependency installation failed")
        slicer.util.errorDisplay(f"Installing PGE-SAM's dependencies failed:\n\n{exc}", windowTitle="PGE-SAM",
                                 detailedText=getattr(exc, "output", None) or str(exc))
        return False
    dialog.close()
    importlib.invalidate_caches()
    if plan.restart:
        slicer.util.infoDisplay(deps.restart_message(plan.restart), windowTitle="PGE-SAM")
        return False
    missing = deps.missing_requirements()
    if missing:
        slicer.util.errorDisplay(str(deps.MissingDependenciesError(missing)), windowTitle="PGE-SAM")
        return False
    return True


def installWithoutAsking():
    """Install what :func:`currentPlan` lists without asking and without a dialog, on the calling (main) thread:
    torch/torchvision through the PyTorch extension, the rest with ``slicer.util.pip_install`` (floors, no pins).
    Returns the plan's steps (requirement lists). Raises ``RuntimeError`` for a plan problem (Slicer too old, no
    PyTorch extension) and ``MissingDependenciesError`` if some are still missing afterwards."""
    plan = currentPlan()
    if plan.problem:
        raise RuntimeError(plan.problem)
    if plan.torch:
        installTorch(plan)
    if plan.pip:
        slicer.util.pip_install(plan.pip_args())
    importlib.invalidate_caches()  # let find_spec see the new site-packages entries
    missing = deps.missing_requirements()
    if missing:
        raise deps.MissingDependenciesError(missing)
    return plan.steps()
