"""Slicer-bound parts of the PGESAM module (import ``slicer``; run inside 3D Slicer only).

``logic``: parameter node and logic; ``moduleTest``: the in-Slicer test case.
The pure, Slicer-free helpers are in ``PGESAMLib``.
"""
