import numpy as np
import pytest
from train_helpers import make_corpus

from skyrack.errors import UserError
from skyrack.train.data import (
    CHUNK_CHARS,
    BatchSampler,
    CharTokenizer,
    build_dataset,
    eval_offsets,
    read_text_file,
)


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.decode(tok.encode("low\n")) == "low\n"
    assert CharTokenizer.from_json(tok.to_json()).chars == tok.chars
    assert np.array_equal(tok.encode_array("hello"), tok.encode("hello"))
    with pytest.raises(UserError, match="outside the model's vocabulary"):
        tok.encode("HELLO")
    with pytest.raises(UserError):
        tok.encode_array("hello é")


def test_tail_split_is_nanogpts_contiguous_last_ten_percent():
    text = make_corpus(200)
    ds = build_dataset(text, "t", "x", "tail")
    cut = int(len(text) * 0.9)
    assert ds.train.segments == [(0, cut)] and ds.val.segments == [(cut, len(text))]
    assert ds.train.n_tokens + ds.val.n_tokens == len(text)


def test_chunk_split_holds_out_every_tenth_chunk():
    text = "abcdefgh\n" * (CHUNK_CHARS * 25 // 9)
    ds = build_dataset(text, "t", "x", "chunks")
    assert ds.val.segments[0] == (9 * CHUNK_CHARS, 10 * CHUNK_CHARS)
    assert all(e - s == CHUNK_CHARS for s, e in ds.val.segments[:2])
    assert ds.train.segments[0] == (0, 9 * CHUNK_CHARS)
    assert abs(ds.val.n_tokens / len(text) - 0.1) < 0.02
    # no training window reaches into a validation chunk
    is_val = np.zeros(len(text) + 1, dtype=bool)
    for s, e in ds.val.segments:
        is_val[s:e] = True
    total = ds.train.window_starts(64)[1][-1]
    starts = ds.train.offsets(np.arange(0, total, 7), 64)
    assert not (is_val[starts] | is_val[starts + 64]).any()
    assert starts.max() + 64 < len(text)


def test_sampler_is_a_function_of_its_position():
    ds = build_dataset(make_corpus(200), "t", "x", "tail")
    a = BatchSampler(ds.train, 16, 4, seed=7)
    batches = [a.next() for _ in range(5)]
    b = BatchSampler(ds.train, 16, 4, seed=7)
    b.load_state_dict({"position": 3})
    x, y = b.next()
    assert np.array_equal(x, batches[3][0]) and np.array_equal(y, batches[3][1])
    assert np.array_equal(x[:, 1:], y[:, :-1])


def test_validation_sample_is_fixed():
    ds = build_dataset(make_corpus(200), "t", "x", "tail")
    a, b = eval_offsets(ds.val, 16, 10), eval_offsets(ds.val, 16, 10)
    assert np.array_equal(a, b) and len(a) == 10
    whole = eval_offsets(ds.val, 16, 0)
    assert whole[0] == ds.val.segments[0][0] and np.all(np.diff(whole) == 16)


def test_bad_data_files(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="empty"):
        read_text_file(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="binary"):
        read_text_file(tmp_path / "bin.dat")
    with pytest.raises(UserError, match="not UTF-8"):
        read_text_file(tmp_path / "latin1.txt")
    with pytest.raises(UserError, match="not found"):
        read_text_file(tmp_path / "missing.txt")
