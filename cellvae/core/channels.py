"""The three stains of BBBC021 and the two orders they come in: acquisition (the raw TIFFs and crops) and RGB."""

STAINS = ("DAPI", "Tubulin", "Actin")  # acquisition order: the raw fields, their crops and the metadata columns
WAVELENGTHS = {"DAPI": 1, "Tubulin": 2, "Actin": 4}  # MetaMorph w<N> of each stain in BBBC021's file names
RGB_STAINS = ("Tubulin", "Actin", "DAPI")  # R, G, B of the PNGs and of every composed cell


def file_column(stain: str) -> str:
    """The selection's column naming a field's raw TIFF of one stain, e.g. file_dapi."""
    return f"file_{stain.lower()}"


def crop_column(stain: str) -> str:
    """The segmentation's column naming a cell's crop of one stain, e.g. crop_dapi."""
    return f"crop_{stain.lower()}"
