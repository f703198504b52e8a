import os
import stat

import pytest

from erasekit.core.errors import ErasekitError
from erasekit.core.files import OWNED, atomic_dir, atomic_path, check_output, write_text


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
    with pytest.raises(ErasekitError, match="output already exists"), atomic_dir(tmp_path / "run"):
        pass
    with atomic_dir(tmp_path / "run", overwrite=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [OWNED, "y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_refuses_a_folder_holding_a_file_erasekit_did_not_write(tmp_path):
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "edit.safetensors").write_text("1")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with (
        pytest.raises(ErasekitError, match=r"files erasekit did not write \(notes.txt\)"),
        atomic_dir(tmp_path / "run", overwrite=True) as tmp,
    ):
        (tmp / "edit.safetensors").write_text("2")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "edit.safetensors").read_text() == "1"


def test_a_folder_without_erasekit_record_is_never_overwritten_but_an_empty_one_is_free(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.png").write_text("x")
    with pytest.raises(ErasekitError, match="did not write"):
        check_output(tmp_path / "mine", overwrite=True)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")  # no --overwrite needed


def test_written_files_follow_the_umask(tmp_path):
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o027)
    try:
        with atomic_dir(tmp_path / "run") as tmp:
            save_file({"x": torch.zeros(1)}, str(tmp / "w.safetensors"))  # safetensors creates it 0600
        with atomic_path(tmp_path / "single.safetensors") as tmp:
            save_file({"x": torch.zeros(1)}, str(tmp))
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "run" / "w.safetensors") == 0o640
    assert mode(tmp_path / "single.safetensors") == 0o640
    assert mode(tmp_path / "run") == 0o750


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, where):
    (tmp_path / "plain").write_text("")
    out = tmp_path / "plain" / "run" if where == "under-a-file" else "/proc/erasekit-out/run"
    with pytest.raises(ErasekitError, match="cannot write"):
        check_output(out)
