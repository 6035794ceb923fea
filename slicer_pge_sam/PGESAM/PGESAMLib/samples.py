"""The sample volume the module registers with Slicer's Sample Data module (pure description, no Slicer).

The MNI ICBM152 2009c symmetric T1 template, 1 mm: the image the core's
``sample:mni_t1`` and the napari plugin use (they read it from the nilearn wheel;
Slicer downloads the same file from nilearn's repository at a fixed tag and
checks its SHA-256).
"""

from __future__ import annotations

from typing import NamedTuple


class SampleVolume(NamedTuple):
    category: str
    name: str  # shown under the thumbnail
    uri: str
    file_name: str
    node_name: str
    sha256: str
    thumbnail: str  # path relative to the module's Resources folder

    @property
    def checksum(self) -> str:
        """``SampleDataLogic.registerCustomSampleDataSource(checksums=...)`` form: ``SHA256:<hex>``."""
        return f"SHA256:{self.sha256}"

    def register_kwargs(self, resources_dir: str) -> dict:
        """Keyword arguments of ``SampleData.SampleDataLogic.registerCustomSampleDataSource``."""
        import os

        return {"category": self.category, "sampleName": self.name, "uris": self.uri, "fileNames": self.file_name,
                "nodeNames": self.node_name, "checksums": self.checksum, "loadFileTypes": "VolumeFile",
                "thumbnailFileName": os.path.join(resources_dir, self.thumbnail)}


MNI_T1 = SampleVolume(
    category="PGE-SAM",
    name="MNI152 T1 (PGE-SAM)",
    uri="https://raw.githubusercontent.com/nilearn/nilearn/0.14.0/nilearn/datasets/data/"
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    file_name="mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    node_name="MNI152_T1",
    sha256="421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    thumbnail="Icons/PGESAM.png",
)
SAMPLES = (MNI_T1,)
