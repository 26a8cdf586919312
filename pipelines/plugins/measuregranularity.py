"""CellProfiler plugin: the built-in MeasureGranularity, runnable with scikit-image ≥ 0.20.

CellProfiler 4.2.8's MeasureGranularity calls scikit-image's erosion, dilation and reconstruction with `selem=`,
which scikit-image 0.20 (the oldest release with CPython 3.11 wheels, .venv-cellprofiler's) no longer accepts
("erosion() got an unexpected keyword argument 'selem'"). Loaded with `cellprofiler --plugins-directory
pipelines/plugins`, this module replaces the built-in one (same name, settings and measurements) and passes
`selem=` on as `footprint=`.
"""

import functools

import skimage.morphology
from cellprofiler.modules import measuregranularity


def _accepting_selem(function):
    """function, also accepting its structuring element under the old keyword selem."""

    @functools.wraps(function)
    def call(*args, selem=None, **kwargs):
        if selem is not None:
            kwargs["footprint"] = selem
        return function(*args, **kwargs)

    return call


for _name in ("erosion", "dilation", "reconstruction"):
    setattr(skimage.morphology, _name, _accepting_selem(getattr(skimage.morphology, _name)))


class MeasureGranularity(measuregranularity.MeasureGranularity):
    """The built-in module; only scikit-image's keyword changed (above)."""
