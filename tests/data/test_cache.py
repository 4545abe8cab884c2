import numpy as np

from faceattrs.data.cache import load_faces


def test_cache_is_built_once_and_reused(face_folder, tmp_path):
    cache = tmp_path / "cache"
    first = load_faces(face_folder, 32, cache_dir=cache, progress=False)
    assert first.images.shape == (64, 32, 32, 3) and first.images.dtype == np.uint8
    assert len(list(cache.glob("*.npy"))) == 1
    second = load_faces(face_folder, 32, cache_dir=cache, progress=False)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.age, second.age)
    assert list(first.names) == list(second.names)


def test_changed_folder_builds_a_new_cache(face_folder, tmp_path):
    cache = tmp_path / "cache"
    load_faces(face_folder, 16, cache_dir=cache, progress=False)
    next(face_folder.glob("*.jpg")).unlink()
    faces = load_faces(face_folder, 16, cache_dir=cache, progress=False)
    assert len(faces) == 63 and len(list(cache.glob("*.npy"))) == 2


def test_unreadable_files_are_dropped_from_the_cache(face_folder, tmp_path):
    (face_folder / "30_0_1_20170116000000001.jpg.chip.jpg").write_text("not an image")
    faces = load_faces(face_folder, 16, cache_dir=tmp_path / "c", progress=False)
    assert len(faces) == 64
