import pytest

from skyrack.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, write_checkpoint


def _files(step):
    return {"model.pt": bytes([step]) * 1000, "config.json": b'{"step": %d}' % step}


def test_write_then_load_round_trip(tmp_path):
    for step in (10, 20, 30, 40):
        write_checkpoint(tmp_path, step, _files(step), keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000040", "ckpt-000030", "ckpt-000020"]
    ckpt, files = load_checkpoint(tmp_path)
    assert ckpt.name == "ckpt-000040" and files == _files(40)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary directory left behind


def test_a_flipped_byte_is_detected_and_fallback_uses_the_previous(tmp_path):
    write_checkpoint(tmp_path, 1, _files(1))
    newest = write_checkpoint(tmp_path, 2, _files(2))
    raw = bytearray((newest / "model.pt").read_bytes())
    raw[500] ^= 0x01
    (newest / "model.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt: model.pt"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(newest)
    ckpt, files = load_checkpoint(tmp_path, fallback=True)
    assert ckpt.name == "ckpt-000001" and files == _files(1)
    ckpt, _ = load_checkpoint(newest, fallback=True)
    assert ckpt.name == "ckpt-000001"


def test_missing_incomplete_and_empty(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    ckpt = write_checkpoint(tmp_path, 5, _files(5))
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path)
    (ckpt / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest"):
        load_checkpoint(tmp_path)
