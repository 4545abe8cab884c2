import shutil

import pytest

from faceattrs.data.inspect import summarize
from faceattrs.data.utkface import UTKFaceQuirkWarning, labels_agree, scan_utkface


def test_scan_reads_labels_and_skips_bad_files(face_folder):
    (face_folder / "30_0_1_20170116000000001.jpg.chip.jpg").write_text("not an image")
    good = next(face_folder.glob("*.jpg"))
    truncated = face_folder / "31_0_1_20170116000000002.jpg.chip.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    (face_folder / "31_0_1_20170116000000003.jpg.chip.jpg").write_bytes(b"")
    (face_folder / "notes.txt").write_text("hello")
    scan = scan_utkface(face_folder, progress=False)
    assert len(scan.records) == 64
    assert set(scan.skipped) == {
        "30_0_1_20170116000000001.jpg.chip.jpg",
        truncated.name,
        "31_0_1_20170116000000003.jpg.chip.jpg",
        "notes.txt",
    }
    assert "not a decodable image" in scan.skipped[truncated.name]


def test_quirky_names_warn_and_are_kept(face_folder):
    src = next(face_folder.glob("*.jpg"))
    shutil.copy(src, face_folder / "39_1_20170116174525125.jpg.chip.jpg")
    shutil.copy(src, face_folder / "24_0_1_20170116220224657 .jpg.chip.jpg")
    with pytest.warns(UTKFaceQuirkWarning, match="missing_race"):
        scan = scan_utkface(face_folder, progress=False)
    assert scan.quirks()["missing_race"] == ["39_1_20170116174525125.jpg.chip.jpg"]
    assert "space_before_ext" in scan.quirks()


def test_duplicate_groups_and_label_agreement(face_folder):
    src = sorted(face_folder.glob("*.jpg"))[0]
    shutil.copy(src, face_folder / "77_1_3_20170116999999999.jpg.chip.jpg")
    scan = scan_utkface(face_folder, progress=False)
    groups = scan.duplicate_groups()
    assert len(groups) == 1 and len(groups[0]) == 2
    assert not labels_agree(groups[0])
    text = summarize(scan)
    assert "1 groups, 2 files, 1 with disagreeing labels" in text


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="UTKFace folder not found"):
        scan_utkface(tmp_path / "nope")
