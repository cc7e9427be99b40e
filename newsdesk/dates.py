"""The month names that date patterns are written with, in one place (ingest's metadata, retrieval's questions)."""

from __future__ import annotations

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
#: The abbreviations a month is written with ("may" is its own); ``sept`` comes before ``sep`` so that
#: the longer one is tried first.
MONTH_ABBREVIATIONS = ("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept", "sep", "oct", "nov", "dec")

#: A month, named or abbreviated, in lower case: for patterns compiled with ``re.IGNORECASE``.
MONTH = rf"(?:{'|'.join(MONTHS + MONTH_ABBREVIATIONS)})"
#: The same months capitalised ("May", "Sept"), for case-sensitive patterns where the capital tells the
#: month from the word.
MONTH_CAPITALISED = rf"(?:{'|'.join(m.capitalize() for m in MONTHS + MONTH_ABBREVIATIONS)})"
