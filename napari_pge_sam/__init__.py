"""napari plugin for pge-sam (npe2)."""
