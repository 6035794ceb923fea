"""The plugin's napari-side helpers without a viewer: the array an Image layer gives, coordinates across layers,
the slicing axis and the current slice (what the widget needs from napari; the rest is ``pge_sam.interaction``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pge_sam._layers import image_array
from pge_sam.errors import InputError


@pytest.mark.parametrize("data, kwargs, match", [
    (np.zeros((8, 8, 3)), {"rgb": True}, "RGB"),
    (np.zeros((2, 3, 8, 8)), {}, "2D"),
    (np.zeros((0, 8, 8)), {}, "empty"),
    (np.zeros((8, 8), complex), {}, "dtype"),
])
def test_unusable_image_layers_are_refused(data, kwargs, match):
    with pytest.raises(InputError, match=match):
        image_array(data, **kwargs)


def test_multiscale_uses_level_zero_without_reading_it():
    class Lazy:
        """An array-like that fails if read as a whole."""

        shape, dtype, ndim = (4, 8, 8), np.dtype(np.float32), 3

        def __array__(self, *a, **k):
            raise AssertionError("the whole array was read")

    level0 = Lazy()
    assert image_array([level0, object()], multiscale=True) is level0


def test_coordinates_cross_layers_through_world_space():
    from napari.layers import Image, Points

    from napari_pge_sam._layers import convert, voxel_size

    image = Image(np.zeros((10, 20, 30)), scale=(2.0, 0.5, 0.75), translate=(10.0, -5.0, 3.0), rotate=30)
    points = Points(np.empty((0, 3)), ndim=3)  # identity transform: its data coordinates are world coordinates
    index = np.array([4.0, 12.0, 7.0])
    world = convert([index], image, points)[0]
    np.testing.assert_allclose(world, image.data_to_world(index))
    assert world[0] == pytest.approx(10.0 + 2.0 * 4)
    np.testing.assert_allclose(convert([world], points, image)[0], index, atol=1e-9)
    np.testing.assert_allclose(voxel_size(image), (2.0, 0.5, 0.75))  # the rotation keeps lengths


def test_slicing_axis_and_current_slice_follow_the_dims():
    from napari.components import Dims
    from napari.layers import Image

    from napari_pge_sam._layers import current_index, slicing_axis

    dims = Dims(ndim=3, ndisplay=2)
    assert slicing_axis(dims, 3) == 0 and slicing_axis(dims, 2) == 0
    dims.order = (2, 0, 1)
    assert slicing_axis(dims, 3) == 2
    dims.ndisplay = 3
    assert slicing_axis(dims, 3) is None
    world4 = Dims(ndim=4, ndisplay=2, order=(0, 2, 1, 3))  # a 3D layer in a 4D world: world axis 2 is data axis 1
    assert slicing_axis(world4, 3) == 1
    image = Image(np.zeros((10, 20, 30)), scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    dims = Dims(ndim=3, ndisplay=2, range=((10.0, 28.0, 2.0), (0.0, 19.0, 1.0), (0.0, 29.0, 1.0)))
    dims.set_point(0, 10.0 + 2.0 * 7)
    assert current_index(dims, image, 0) == 7

