"""The ``pge-sam`` command. Each subcommand lives in its own module and is imported only when run.

Other packages add subcommands through the entry-point group ``pge_sam.commands``
(``name = module``, the module defining ``add_arguments(parser)`` and
``run(args)``); the napari plugin adds ``pge-sam napari`` that way, so the core
names no front-end.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import warnings

from ..errors import PgeSamError, PgeSamWarning

# name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "segment": ("pge_sam.cli.segment", "segment an image or volume from points/boxes, headless"),
    "precompute": ("pge_sam.cli.precompute",
                   "encode every slice into a portable embedding store (GPU machine -> laptop)"),
    "models": ("pge_sam.cli.admin", "list the models and which weights are present"),
    "weights": ("pge_sam.cli.admin", "download official SAM checkpoints (explicit, with sha256 check)"),
    "train": ("pge_sam.cli.train", "train the base SAM or PGE adapters (resumable)"),
    "bench": ("pge_sam.cli.bench", "run the DM-Seg-mini benchmark (CSV, markdown table, plots)"),
    "degrade": ("pge_sam.cli.degrade", "list degradations or write a preview grid"),
}
PLUGIN_GROUP = "pge_sam.commands"


def plugin_commands() -> dict[str, tuple[str, str]]:
    """name -> (module, help) of the subcommands other installed packages register in :data:`PLUGIN_GROUP`."""
    from importlib.metadata import entry_points

    return {ep.name: (ep.value, "") for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="pge-sam", description="Interactive Segment-Anything segmentation "
                                                                 "that stays accurate on degraded scans.")
    parser.add_argument("--version", action="version", version=f"pge-sam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in {**COMMANDS, **plugin_commands()}.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:  # a plugin whose own dependencies are not installed
            continue
        help_text = help_text or (mod.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=help_text, description=help_text)
        getattr(mod, f"add_{name}_arguments", getattr(mod, "add_arguments", None))(p)
        p.set_defaults(_module=module, _run=f"run_{name}" if hasattr(mod, f"run_{name}") else "run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Every failure a user can cause ends in one ``error:`` line and exit code 2;
    pge-sam's warnings (cache fallbacks, ...) print as one ``warning:`` line each."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(importlib.import_module(args._module), args._run)
    prefix = f"pge-sam {args.command}"
    with warnings.catch_warnings():
        warnings.simplefilter("always", PgeSamWarning)
        previous = warnings.showwarning
        warnings.showwarning = functools.partial(_show_warning, prefix, previous)
        try:
            return int(run(args) or 0)
        except PgeSamError as err:
            print(f"{prefix}: error: {err}", file=sys.stderr)
        except OSError as err:  # disk full, permission denied, missing file, ... from any step
            where = f" ({err.filename})" if err.filename and str(err.filename) not in str(err.strerror) else ""
            print(f"{prefix}: error: {err.strerror or err}{where}", file=sys.stderr)
        except MemoryError:
            print(f"{prefix}: error: out of memory; try a smaller volume, --device cpu, or close other programs",
                  file=sys.stderr)
        return 2


def _show_warning(prefix, fallback, message, category, filename, lineno, file=None, line=None):
    if issubclass(category, PgeSamWarning):
        print(f"{prefix}: warning: {message}", file=sys.stderr)
    else:
        fallback(message, category, filename, lineno, file, line)


if __name__ == "__main__":
    sys.exit(main())
