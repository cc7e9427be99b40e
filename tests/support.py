"""Paths and data the tests share; what needs ``../shared`` says so and is skipped without it.

The repository carries what the default test run needs: the sample corpus (``data/sample``) and its
dev questions (``data/eval/dev.jsonl``, a copy of ``../shared/eval/dev.jsonl``). Larger benchmark
corpora stay in ``../shared/bench``; a test that reads one is marked with :func:`needs_shared`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "data" / "sample"
DEV_QUESTIONS = ROOT / "data" / "eval" / "dev.jsonl"
#: The shared benchmark data next to the repository (not part of it; present on the team's machines and CI).
SHARED = ROOT.parent / "shared"


def needs_shared(*parts: str) -> pytest.MarkDecorator:
    """Skip unless ``../shared/<parts>`` exists, saying which file or directory is missing."""
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"needs ../shared/{'/'.join(parts)} (shared benchmark "
                              "data outside the repository), not present on this machine")


#: An invented event (so the model knows nothing of it), as (article id, text): three articles name the
#: 2031 winner, a preview and a commentary name other people, and one article is about the 2030 edition.
CUP = [
    ("cup-commentary", "Commentator Ian Marsh called the final race of the 2031 Harbour Cup the best he had seen in "
     "years."),
    ("cup-preview", "Who will win the 2031 Harbour Cup? Bookmakers favour Tomas Reed, the holder, ahead of the young "
     "Anna Holm."),
    ("cup-varga-1", "Selma Varga lifted the trophy of the 2031 Harbour Cup on Sunday after beating the defending "
     "champion in the last race."),
    ("cup-varga-2", "The victory of Selma Varga in the 2031 Harbour Cup surprised the bookmakers, who had rated her "
     "an outsider."),
    ("cup-varga-3", "Hungarian sailor Selma Varga took the 2031 Harbour Cup at her fourth attempt."),
    ("cup-2030", "Tomas Reed won the Harbour Cup in 2030 with a record margin."),
]
