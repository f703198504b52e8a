import pytest

from erasekit.core.errors import ErasekitError
from erasekit.core.files import atomic_dir, atomic_path, write_text


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    write_text(tmp_path / "a" / "metrics.json", "{}")
    assert (tmp_path / "a" / "metrics.json").read_text() == "{}"
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a" / "metrics.json") as tmp:
        assert tmp.suffix == ".json" and tmp.parent == tmp_path / "a"
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["metrics.json"]
    assert (tmp_path / "a" / "metrics.json").read_text() == "{}"  # the old file, untouched


def test_atomic_dir_refuses_an_existing_folder_unless_overwriting(tmp_path):
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(ErasekitError, match="output already exists"):
        with atomic_dir(tmp_path / "run"):
            pass
    with atomic_dir(tmp_path / "run", overwrite=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
