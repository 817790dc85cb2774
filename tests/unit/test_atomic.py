"""sv4d_lib.atomic: nothing appears under the final name unless the whole write and its check succeeded."""
from __future__ import annotations

import pytest

from sv4d_lib.atomic import atomic_file, atomic_files, atomic_folder


def test_a_file_appears_only_after_its_block_and_check(tmp_path):
    target = tmp_path / "out.mp4"
    with atomic_file(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".mp4" and temporary.name.startswith(".")
        temporary.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("content", [None, b""])
def test_missing_or_empty_files_are_refused(tmp_path, content):
    with pytest.raises(OSError, match="out.bin" if content is None else "empty file"):
        with atomic_file(tmp_path / "out.bin") as temporary:
            if content is not None:
                temporary.write_bytes(content)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_check_of_one_file_leaves_none_of_the_group(tmp_path):
    def check(path):
        if path.read_bytes() == b"bad":
            raise OSError("bad content")

    with pytest.raises(OSError, match="bad content"):
        with atomic_files([tmp_path / "a", tmp_path / "b"], check) as (a, b):
            a.write_bytes(b"good")
            b.write_bytes(b"bad")
    assert list(tmp_path.iterdir()) == []


def test_an_exception_in_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as temporary:
            temporary.write_text("new, partial")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    with atomic_folder(tmp_path / "frames") as folder:
        (folder / "0.png").write_bytes(b"png")
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["0.png"]
    with pytest.raises(OSError, match="no entries"):
        with atomic_folder(tmp_path / "empty"):
            pass
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_folder(tmp_path / "frames"):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
