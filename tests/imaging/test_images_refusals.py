"""Input reading refuses what it cannot use, in one line naming the file: a command's output never replaces one of
its inputs, non-finite pixels, mixed kinds of images, images reached twice, crops too large or not regular files,
empty tables and cells, non-array .npy files, repeated wells."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.cli import main as cli  # noqa: E402
from cellvae.cli.common import read_inputs  # noqa: E402
from cellvae.imaging.images import image_table, read_image  # noqa: E402


def save_pngs(folder, n=3, size=16, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    paths = []
    for i in range(n):
        paths.append(folder / f"c{i}.png")
        Image.fromarray(np.full(shape, 30 * (i + 1), np.uint8), mode).save(paths[-1])
    return paths


def save_crops(folder, n=3, side=12):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"c{i}.npy")
        np.save(paths[-1], rng.integers(100, 4000, (side, side, 3)).astype(np.uint16))
    return paths


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    """An untrained z = 2 VAE for 16 px uint8 cells, saved as model.keras beside its preprocessing.json."""
    from cellvae.core.config import vae_settings
    from cellvae.model.vae import build_vae

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_vae(16, 2, **vae_settings()).save(path)
    preprocessing = {"input_kind": "uint8", "size": 16, "channel_order": "auto", "percentiles": [0.5, 99.8]}
    (path.parent / "preprocessing.json").write_text(json.dumps({**preprocessing, "scale": None, "ranges_rgb": None}))
    return path


def test_embed_never_writes_over_its_model_its_manifest_or_an_image(untrained_model, tmp_path, capsys):
    paths = save_pngs(tmp_path / "pngs")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [p.name for p in paths]}).to_csv(manifest, index=False)
    (tmp_path / "pngs" / "manifest.csv").write_bytes(manifest.read_bytes())
    manifest = tmp_path / "pngs" / "manifest.csv"
    model_bytes, manifest_bytes, image_bytes = (p.read_bytes() for p in (untrained_model, manifest, paths[0]))
    os.symlink(manifest, tmp_path / "link.csv")
    for out in (untrained_model, manifest, tmp_path / "pngs" / ".." / "pngs" / "manifest.csv", tmp_path / "link.csv"):
        with pytest.raises(SystemExit) as exit:
            cli(["embed", "--model", untrained_model, "--images", manifest, "--out", out])
        assert exit.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--out" in error and "is an input of this command" in error and "give another path" in error
    with pytest.raises(SystemExit) as exit:
        cli(["embed", "--model", untrained_model, "--images", tmp_path / "pngs", "--out", paths[0]])
    assert exit.value.code == 2 and f"{paths[0]}" in capsys.readouterr().err
    assert untrained_model.read_bytes() == model_bytes and manifest.read_bytes() == manifest_bytes
    assert paths[0].read_bytes() == image_bytes
    out = tmp_path / "embedding.csv"
    assert cli(["embed", "--model", untrained_model, "--images", manifest, "--out", out]) == 0
    assert len(pd.read_csv(out)) == 3


def test_embed_never_writes_inside_a_run_folder(untrained_model, tmp_path, capsys):
    """--out anywhere inside a run folder (a checkpoint, a shard, the lock, a new file) is refused; nothing changes."""
    run = untrained_model.parent
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "data").mkdir(exist_ok=True)
    inside = (run / "checkpoints" / "epoch-0001.keras", run / "data" / "train.npy", run / ".lock")
    kept = {path: b"kept" for path in inside}
    for path, content in kept.items():
        path.write_bytes(content)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [p.name for p in save_pngs(tmp_path)]}).to_csv(manifest, index=False)
    for out in (*kept, run / "embedding.csv"):
        with pytest.raises(SystemExit) as exit:
            cli(["embed", "--model", untrained_model, "--images", manifest, "--out", out])
        assert exit.value.code == 2
        assert f"--out {out} is inside the run folder {run.resolve()}" in capsys.readouterr().err
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert not (run / "embedding.csv").exists()


def test_non_finite_pixels_are_refused_naming_the_file(tmp_path):
    cell = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    cell[2, 3, 1] = np.nan
    np.save(tmp_path / "nan.npy", cell)
    with pytest.raises(ValueError, match=r"nan.npy holds 1 non-finite pixel value\(s\) \(NaN or inf\)"):
        read_image(tmp_path / "nan.npy")
    cell[2, 3, 1] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", cell)
    with pytest.raises(ValueError, match="inf.tif holds 1 non-finite"):
        read_image(tmp_path / "inf.tif")


def test_validation_images_of_another_kind_than_the_training_images_are_refused(tmp_path, capsys):
    crops = save_crops(tmp_path / "crops")
    pngs = save_pngs(tmp_path / "pngs")
    out = tmp_path / "run"
    args = ["train", "--images", tmp_path / "crops", "--validation-images", tmp_path / "pngs"]
    args += ["--latent-dim", "2", "--epochs", "1", "--size", "16", "--config", "none", "--out", out]
    assert cli(args) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "validation images are uint8 images" in error and str(pngs[0]) in error
    assert "training images are raw" in error and str(crops[0]) in error
    assert not out.exists()


def test_filters_that_would_be_ignored_are_refused(tmp_path, capsys):
    """A file pattern for a manifest, --validation-where without --validation-images and --out naming a file are
    refused in one line before anything is read or written (they used to be ignored or end in [Errno 17])."""
    paths = save_pngs(tmp_path / "pngs")
    manifest = tmp_path / "pngs" / "manifest.csv"
    pd.DataFrame({"path": [p.name for p in paths], "plate": ["P_1", "P_1", "P_2"]}).to_csv(manifest, index=False)
    out, a_file = tmp_path / "run", tmp_path / "notes.txt"
    a_file.write_text("kept")
    common = ["--latent-dim", "2", "--epochs", "1", "--size", "16"]
    with pytest.raises(ValueError, match=r"a file pattern \('c0\*'\) selects images in folders, but .*manifest.csv"):
        image_table([manifest], [], "c0*")
    for extra, said in [
        (
            ["--validation-where", "plate=P_2", "--out", out],
            "--validation-where filters the rows of --validation-images",
        ),
        (["--out", a_file], f"--out {a_file} is a file: give the folder of the run"),
    ]:
        with pytest.raises(SystemExit) as exit:
            cli(["train", "--images", manifest, *common, *extra])
        assert exit.value.code == 2 and said in capsys.readouterr().err
    assert cli(["train", "--images", manifest, "--pattern", "c0*", *common, "--out", out]) == 1
    assert "selects images in folders" in capsys.readouterr().err
    assert not out.exists() and a_file.read_text() == "kept"


def test_a_grey_png_among_colour_ones_is_refused_but_an_all_grey_set_is_read(tmp_path):
    save_pngs(tmp_path / "mixed")
    Image.fromarray(np.full((16, 16), 90, np.uint8), "L").save(tmp_path / "mixed" / "grey.png")
    with pytest.raises(ValueError, match=r"grey.png is a grey \(one-channel\) PNG among colour ones"):
        read_inputs([tmp_path / "mixed"], [], "*", None)
    save_pngs(tmp_path / "grey", mode="L")
    _, raw, kind, _ = read_inputs([tmp_path / "grey"], [], "*", None)
    assert kind == "uint8" and all(cell.shape == (16, 16, 3) for cell in raw)


def test_an_image_reached_twice_is_refused(tmp_path, monkeypatch):
    paths = save_crops(tmp_path / "crops")
    with pytest.raises(ValueError, match="crops is given twice"):
        image_table([tmp_path / "crops", tmp_path / "crops"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="crops is given twice"):
        image_table(["crops", tmp_path / "crops" / ".." / "crops"])
    manifest = tmp_path / "one.csv"
    pd.DataFrame({"path": [str(paths[1])]}).to_csv(manifest, index=False)
    with pytest.raises(ValueError, match=f"image {paths[1]} is reached twice: by .*crops and by .*one.csv"):
        image_table([tmp_path / "crops", manifest])
    assert len(image_table([tmp_path / "crops"])) == 3


def test_crops_larger_than_the_stated_side_are_refused_from_the_header(tmp_path):
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as file:  # the header of a 10,000 × 10,000 crop: its 600 MB are never read
        np.lib.format.write_array_header_1_0(
            file, {"descr": "<u2", "fortran_order": False, "shape": (10_000, 10_000, 3)}
        )
    with pytest.raises(ValueError, match=r"huge.npy is 10000×10000 px, larger than png.max_crop_side \(2048\)"):
        read_image(huge)
    Image.fromarray(np.zeros((40, 20, 3), np.uint8)).save(tmp_path / "tall.png")
    tifffile.imwrite(tmp_path / "tall.tif", np.zeros((3, 40, 20), np.uint16))
    for name in ("tall.png", "tall.tif"):
        with pytest.raises(ValueError, match=f"{name} is 40×20 px, larger than png.max_crop_side \\(32\\)"):
            read_image(tmp_path / name, max_side=32)
        assert read_image(tmp_path / name, max_side=40).shape == (40, 20, 3)


def test_only_regular_files_are_read_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "cell.npy")
    os.mkfifo(tmp_path / "cell.tif")
    (tmp_path / "folder.png").mkdir()
    script = (
        "import sys\nfrom cellvae.imaging.images import read_image\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        read_image(path)\n    except ValueError as error:\n        print(error)\n"
    )
    paths = [tmp_path / name for name in ("cell.npy", "cell.tif", "folder.png")]
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines() == [f"image {path} is not a regular file; give image files" for path in paths]


def test_an_empty_manifest_csv_is_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"image manifest .*empty.csv is empty: expected a header row"):
        image_table([tmp_path / "empty.csv"])


def test_a_npy_that_is_not_a_crop_array_is_named_and_never_unpickled(tmp_path):
    (tmp_path / "garbage.npy").write_bytes(b"hello, not an array")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "record.npy", np.zeros((4, 4, 3), dtype=[("x", "<f4")]))
    for name in ("garbage.npy", "objects.npy", "record.npy"):
        with pytest.raises(ValueError, match=f"{name} is not a crop array") as error:
            read_image(tmp_path / name)
        assert "pickle" not in str(error.value)


def test_an_empty_path_cell_names_the_manifest_and_its_line(tmp_path):
    save_crops(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,plate\nc0.npy,P1\n,P1\nc2.npy,P2\n")
    with pytest.raises(ValueError, match=r"manifest .*manifest.csv, line 3: the path cell is empty"):
        image_table([tmp_path / "manifest.csv"])


IMAGE_CSV_HEADER = (
    "Image_Metadata_Plate_DAPI,Image_Metadata_Well_DAPI,Image_Metadata_Compound,Image_Metadata_Concentration,"
    "Replicate,ImageNumber,Image_PathName_DAPI,Image_FileName_DAPI,Image_FileName_Tubulin,Image_FileName_Actin"
)


def test_moa_eval_names_repeated_wells(tmp_path, capsys):
    meta = tmp_path / "BBBC021_v1_image.csv"
    rows = [
        f"Week1_1,{well},{c},{x},1,{i},Week1/Week1_1,{well}_s1_w1.tif,{well}_s1_w2.tif,{well}_s1_w4.tif"
        for i, (well, c, x) in enumerate([("B02", "DMSO", 0.0), ("B03", "taxol", 1.0), ("B04", "ALLN", 1.0)])
    ]
    meta.write_text("\n".join([IMAGE_CSV_HEADER, *rows]) + "\n")
    moa_csv = tmp_path / "BBBC021_v1_moa.csv"
    moa_csv.write_text("compound,concentration,moa\nDMSO,0.0,DMSO\ntaxol,1.0,MS\nALLN,1.0,PD\n")
    wells = tmp_path / "wells.csv"
    wells.write_text("plate,well,f0\nWeek1_1,B02,1.0\nWeek1_1,B03,2.0\nWeek1_1,B03,2.5\nWeek1_1,B04,0.5\n")
    assert cli(["moa-eval", "--well-profiles", wells, "--image-metadata", meta, "--moa", moa_csv]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"cellvae moa-eval: {wells}: ") and "Week1_1 B03" in error and "\n" not in error
    assert "merge" not in error.lower()


def test_a_crop_larger_than_the_models_canvas_is_named(untrained_model, tmp_path, capsys):
    """evaluate and embed compose crops at the model's scale: one that does not fit is named, with what to do."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(untrained_model.read_bytes())
    preprocessing = json.loads((untrained_model.parent / "preprocessing.json").read_text())
    (run / "preprocessing.json").write_text(json.dumps({**preprocessing, "scale": 1.0}))
    folder = tmp_path / "crops"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(folder / "big.png")
    assert cli(["embed", "--model", run, "--images", folder, "--out", tmp_path / "z.csv"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{folder / 'big.png'}: cell of 40×40 px does not fit the 16 px canvas" in error
    assert "give crops that fit, or a model of a larger canvas" in error and not (tmp_path / "z.csv").exists()
