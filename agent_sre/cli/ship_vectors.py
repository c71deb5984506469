"""Build the embeddings the package ships, so that no worker computes them at start.

    python -m agent_sre.cli.ship_vectors            # rebuild agent_sre/retrieval/shipped/
    python -m agent_sre.cli.ship_vectors --check    # exit 1 when they are missing or stale

rag indexes the packaged runbook and fewshot the examples generated from it and from the
real-alert knowledge: both are fixed by the package, so their vectors are too. Embedding them
took a fresh pod (an empty cache directory) about 25 s of its start. They are shipped for both
precisions the embedder runs in (bf16 where the CPU has it, fp32 elsewhere): the image is built
on one machine and runs on others, and a vector of the other precision would move a score by up
to 1e-4, which is not nothing for the TRM's familiarity floor or a near tie.

Why in the package and not built into the image: every way the worker runs (pip install, the
image, the tests) gets them, and a test (tests/test_shipped_vectors.py) fails when a change to the
runbook, the examples, the text format or the model leaves them stale. Files are keyed exactly
like the cache (`cache.cache_key`), so stale ones are never used: the worker falls back to its
cache directory and says so. It lives with the commands, not in `retrieval/`: it reads what rag
and fewshot embed, and retrieval is below them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..schemas.catalog import load_catalog
from ..selectors.fewshot import FewShotSelector
from ..selectors.rag import CACHE_KIND, RagSelector
from ..settings import Settings
from ..retrieval.cache import SHIPPED_DIR, cache_key, file_name, read_vectors, write_vectors
from ..retrieval.embedder import PRECISIONS, Embedder, model_id

log = logging.getLogger(__name__)


def packaged_texts() -> dict[str, list[str]]:
    """The texts rag and fewshot embed at start with the package's catalog, runbook and knowledge."""
    catalog = load_catalog(None)
    per_pattern = Settings.model_fields["fewshot_examples_per_pattern"].default
    return {
        CACHE_KIND: [chunk.text for chunk in RagSelector(catalog, None).chunks()],
        "fewshot-train": [e.text for e in FewShotSelector(catalog, None, per_pattern=per_pattern).training_examples()],
    }


def expected_files(texts: dict[str, list[str]]) -> dict[str, tuple[str, str, str]]:
    """file name -> (kind, precision, key), for every kind and precision."""
    files = {}
    for precision in PRECISIONS:
        for kind, kind_texts in texts.items():
            key = cache_key(model_id(precision), kind_texts)
            files[file_name(kind, key)] = (kind, precision, key)
    return files


def problems() -> list[str]:
    """What is wrong with the shipped files (missing, unreadable or stale ones); empty when none."""
    texts = packaged_texts()
    expected = expected_files(texts)
    found = {path.name for path in SHIPPED_DIR.glob("*.npz")} if SHIPPED_DIR.is_dir() else set()
    wrong = [f"stale: {name}" for name in sorted(found - set(expected))]
    for name, (kind, precision, key) in sorted(expected.items()):
        if name not in found:
            wrong.append(f"missing: {name} ({kind}, {precision})")
        elif read_vectors(SHIPPED_DIR / name, key, len(texts[kind])) is None:
            wrong.append(f"unreadable: {name}")
    return wrong


def build() -> list[str]:
    """Embed every packaged text in every precision into SHIPPED_DIR; remove what is stale."""
    texts = packaged_texts()
    expected = expected_files(texts)
    keep = frozenset(SHIPPED_DIR / name for name in expected)
    for precision in PRECISIONS:
        embedder = Embedder(precision=precision)
        for name, (kind, wanted, key) in expected.items():
            if wanted == precision:
                log.info("embedding %d %s texts in %s", len(texts[kind]), kind, precision)
                write_vectors(kind, SHIPPED_DIR / name, key, embedder.encode(texts[kind]), keep)
    for path in SHIPPED_DIR.glob("*.npz"):
        if path not in keep:
            path.unlink()
    return sorted(expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a file is missing or stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        wrong = problems()
        for line in wrong:
            print(line)
        return 1 if wrong else 0
    for name in build():
        print(SHIPPED_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
