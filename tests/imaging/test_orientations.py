import numpy as np
import pytest

from cellvae.imaging.orientations import dihedral_variants, orientation_mean


def test_dihedral_variants_are_the_set_the_training_augmentation_draws_from():
    import tensorflow as tf

    from cellvae.imaging.shards import dihedral_augment

    cells = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    variants = dihedral_variants(cells).reshape(2, 8, 6, 6, 3)
    assert len({variants[0, i].tobytes() for i in range(8)}) == 8  # 8 distinct images of a generic cell
    np.testing.assert_array_equal(variants[:, 0], cells)
    seen = [set(), set()]
    for seed in range(40):
        drawn = dihedral_augment(tf.constant(cells), tf.constant([seed, 1])).numpy()
        for index in range(2):
            matches = [i for i in range(8) if np.array_equal(drawn[index], variants[index, i])]
            assert len(matches) == 1  # every drawn image is one of the variants
            seen[index].add(matches[0])
    assert seen == [set(range(8))] * 2


def flattened(images):
    return np.asarray(images, np.float64).reshape(len(images), -1)


def test_one_orientation_is_the_description_itself():
    images = np.random.default_rng(1).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(orientation_mean(flattened, images, 1), flattened(images))


def test_eight_orientations_average_each_cells_views_and_forget_its_orientation():
    images = np.random.default_rng(2).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    averaged = orientation_mean(flattened, images, 8)
    by_hand = np.stack(
        [np.mean([flattened(view[None])[0] for view in dihedral_variants(cell[None])], axis=0) for cell in images]
    )
    np.testing.assert_allclose(averaged, by_hand)
    turned = np.rot90(images[:, :, ::-1], 1, axes=(1, 2))
    np.testing.assert_allclose(orientation_mean(flattened, turned, 8), averaged)
    assert not np.allclose(flattened(turned), flattened(images))  # the description alone is not invariant


def test_other_orientation_counts_are_refused():
    with pytest.raises(ValueError, match="orientations must be one of"):
        orientation_mean(flattened, np.zeros((1, 4, 4, 3)), 4)
