import ctypes

import pytest

from faceattrs import cli
from faceattrs.training import memory


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch):
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # no mallopt attribute (musl, macOS)
    assert memory.keep_freed_memory() is False


def test_every_setting_must_be_accepted(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 0 if option == memory._M_MMAP_THRESHOLD else 1  # glibc refuses a value out of range

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    assert memory.keep_freed_memory() is False
    assert (memory._M_MMAP_THRESHOLD, 32 << 20) in calls


@pytest.mark.parametrize(
    ("argv", "kept"), [(["train", "--set", "nonsense"], True), (["predict", "missing.jpg"], False)]
)
def test_only_training_commands_keep_freed_memory(argv, kept, monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    cli.main([*argv, "--out", str(tmp_path / "out")] if argv[0] == "train" else argv)
    assert bool(calls) is kept
