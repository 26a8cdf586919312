"""Build pipelines/measure_crops.cppipe with CellProfiler's Python API and check that it loads back.

The pipeline measures every cell of a single-cell crop (68×68, BBBC021 at 0.656 µm/px);
cellvae.profiling.cellprofiler_features
writes the crops, runs it headless once per batch and keeps the cell nearest each crop's centre.

Usage: .venv-cellprofiler/bin/python pipelines/build_measure_crops.py [OUT]  (default: beside this script)
"""

import logging
import sys
from pathlib import Path

logging.disable(logging.WARNING)  # fill_modules() warns about harmless duplicate module definitions

import cellprofiler_core.preferences as preferences  # noqa: E402

preferences.set_headless()

from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.utilities.core.modules import fill_modules, instantiate_module  # noqa: E402

IMAGES = "DNA, Tubulin, Actin"  # LoadData's FileName_/PathName_ columns, one per stain (list settings are text)
OBJECTS = "Cells, Nuclei"
CELL_BODY = "TubulinPlusActin"  # the image the cells grow on
NEIGHBOUR_DISTANCE = 5  # px: cells this close count as neighbours (Cells_Neighbors_NumberOfNeighbors_5)
OTSU = {
    "threshold__threshold_scope": "Global",
    "threshold__global_operation": "Otsu",
    "threshold__two_class_otsu": "Two classes",
}
LOAD_DATA_NOTE = (
    "Image sets come from a CSV written by cellvae.profiling.cellprofiler_features (headless: --data-file), "
    "one row per crop: "
    "Metadata_Crop and FileName_/PathName_ of DNA, Tubulin and Actin (each crop's raw 16-bit channels, scaled to 0-1)."
)
NUCLEI_NOTE = (
    "Nuclei touching the crop border are kept: the centre cell often reaches the border of a 68 px window, and its "
    "neighbours always do. 20-60 px diameters as in analysis.cppipe (single MCF7 nuclei, median ~35 px)."
)
NEIGHBOURS_NOTE = f"Neighbour density: the cells within {NEIGHBOUR_DISTANCE} px of each cell, inside the crop's window."


def add(pipeline, name, note=None, **settings):
    """Append module `name` with its settings (a__b sets setting b of the module's part a)."""
    module = instantiate_module(name)
    module.set_module_num(len(pipeline.modules()) + 1)
    for key, value in settings.items():
        owner = module
        *parts, setting = key.split("__")
        for part in parts:
            owner = getattr(owner, part)
        getattr(owner, setting).value = value
    if note:
        module.notes = [note]
    pipeline.add_module(module)
    return module


def build():
    """The measurement pipeline: segment nuclei and cells, measure both, export their tables."""
    pipeline = Pipeline()
    add(
        pipeline,
        "LoadData",
        LOAD_DATA_NOTE,
        csv_directory="Default Input Folder|",
        csv_file_name="load_data.csv",
        wants_images=True,
        rescale=True,
        image_directory="Default Input Folder|",
        wants_image_groupings=False,
    )
    cell_body = add(pipeline, "ImageMath", operation="Add", output_image_name=CELL_BODY)
    cell_body.images[0].image_name.value = "Tubulin"
    cell_body.images[1].image_name.value = "Actin"
    add(
        pipeline,
        "IdentifyPrimaryObjects",
        NUCLEI_NOTE,
        x_name="DNA",
        y_name="Nuclei",
        size_range="20,60",
        exclude_size=True,
        exclude_border_objects=False,
        unclump_method="Intensity",
        watershed_method="Intensity",
        fill_holes="After both thresholding and declumping",
        use_advanced=True,
        threshold__threshold_smoothing_scale=1.3488,
        **OTSU,
    )
    add(
        pipeline,
        "IdentifySecondaryObjects",
        x_name="Nuclei",
        y_name="Cells",
        method="Propagation",
        image_name=CELL_BODY,
        regularization_factor=0.05,
        fill_holes=True,
        wants_discard_edge=False,
        **OTSU,
    )
    add(pipeline, "MeasureObjectSizeShape", objects_list=OBJECTS, calculate_zernikes=True, calculate_advanced=False)
    add(pipeline, "MeasureObjectIntensity", images_list=IMAGES, objects_list=OBJECTS)
    distribution = add(pipeline, "MeasureObjectIntensityDistribution", images_list=IMAGES, wants_zernikes="None")
    distribution.objects[0].object_name.value = "Cells"
    distribution.objects[0].center_choice.value = "Centered on other objects"
    distribution.objects[0].center_object_name.value = "Nuclei"
    distribution.bin_counts[0].bin_count.value = 4
    distribution.bin_counts[0].wants_scaled.value = True
    add(pipeline, "MeasureTexture", images_list=IMAGES, objects_list=OBJECTS, images_or_objects="Objects")
    add(
        pipeline,
        "MeasureGranularity",
        "Crops are small: full resolution, background removed at half resolution, spectrum up to 10 px.",
        images_list=IMAGES,
        wants_objects=True,
        objects_list=OBJECTS,
        subsample_size=1.0,
        image_sample_size=0.5,
        element_size=10,
        granular_spectrum_length=10,
    )
    add(
        pipeline,
        "MeasureColocalization",
        images_list=IMAGES,
        objects_list="Cells",
        images_or_objects="Within objects",
    )
    add(
        pipeline,
        "MeasureObjectNeighbors",
        NEIGHBOURS_NOTE,
        object_name="Cells",
        neighbors_name="Cells",
        distance_method="Within a specified distance",
        distance=NEIGHBOUR_DISTANCE,
    )
    export = add(
        pipeline,
        "ExportToSpreadsheet",
        "Cells.csv and Nuclei.csv in the output folder; the centre cell is chosen in Python.",
        directory="Default Output Folder|",
        wants_prefix=False,
        wants_overwrite_without_warning=True,
        add_metadata=True,
        nan_representation="NaN",
        wants_everything=False,
    )
    for index, objects in enumerate(OBJECTS.split(", ")):
        if index:
            export.add_object_group()
        export.object_groups[index].name.value = objects
        export.object_groups[index].wants_automatic_file_name.value = True
    return pipeline


def save(pipeline, path):
    """Write the pipeline as .cppipe text and load it back (same modules, same settings)."""
    with open(path, "w") as stream:
        pipeline.dump(stream, save_image_plane_details=False)
    loaded = Pipeline()
    loaded.load(str(path))
    settings = [[setting.unicode_value for setting in module.settings()] for module in pipeline.modules()]
    assert settings == [[setting.unicode_value for setting in module.settings()] for module in loaded.modules()]
    print("wrote", path, " ".join(module.module_name for module in loaded.modules()))


if __name__ == "__main__":
    fill_modules()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("measure_crops.cppipe")
    save(build(), out)
