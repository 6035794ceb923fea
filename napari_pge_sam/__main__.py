"""``python -m napari_pge_sam``: the demo command, also ``pge-sam napari`` (see :mod:`napari_pge_sam._cli`)."""

from __future__ import annotations

import argparse
import sys

from . import _cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_pge_sam", description=(_cli.__doc__ or "").splitlines()[0])
    _cli.add_arguments(parser)
    return int(_cli.run(parser.parse_args(argv)) or 0)


if __name__ == "__main__":
    sys.exit(main())
