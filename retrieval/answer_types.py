"""What kind of answer a question asks for, and the candidate answers of that kind a text states.

Shared by the searcher (which ranks higher the passages stating the answer most passages agree on)
and the extractive answerer (which quotes the sentence stating it). Candidate answers are folded
keys, so that spellings of one answer count together: "Nov. 12, 2020" and "12th November" are both
``nov-12``, "two" and "2" are ``2``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache

from newsdesk.dates import MONTH, MONTHS
from retrieval.lexical import STOPWORDS, tokenize

_MONTHS = "|".join(MONTHS)
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_TIME = re.compile(
    rf"\b((1[89]|20)\d\d|{_MONTHS}|{_DAYS}|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|today|yesterday|"
    r"tomorrow|ago|last (year|month|week)|next (year|month|week)|this (year|month|week)|century|decade|"
    r"earlier|later|since|until|before|after|during|season|quarter)\b",
    re.I,
)
_QUANTITY = re.compile(
    r"\b(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|half|"
    r"several|many|few)\b",
    re.I,
)
_MON = MONTH
YEAR = r"(?:1[89]|20)\d\d"
# A publication date heading a snippet ("Feb 9, 2020 ... Toy Story 4 won"): when it was written, not what.
DATELINE = re.compile(rf"^\s*{_MON}\.? \d{{1,2}}, {YEAR}\s*(?:\.\.\.|…|[-–—])\s*", re.I)
# A date as an answer: month and day (year optional), day and month, month and year, or a year alone.
_DATE = re.compile(
    rf"\b(?P<m1>{_MON})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y1>{YEAR})\b)?"
    rf"|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{_MON})\b\.?(?:,?\s+(?P<y2>{YEAR})\b)?"
    rf"|\b(?P<m3>{_MON})\.?,?\s+(?P<y3>{YEAR})\b"
    rf"|\b(?P<y4>{YEAR})\b",
    re.I,
)
_NUMBER_WORDS = {
    word: str(value) for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "dozen": "12"}
_AMOUNT = re.compile(
    rf"(?<![\w.,$€£¥])(?:(?:[A-Z]{{1,2}})?[$€£¥]\s?)?(?:\d[\d,]*(?:\.\d+)?|(?:{'|'.join(_NUMBER_WORDS)})\b)"
    r"(?:\s?(?:%|percent\b|per cent\b|(?:million|billion|trillion|bn)\b)|(?:m|bn|k)\b)?",
    re.I,
)
_WORD = re.compile(r"[^\W_](?:[\w’'&-]|\.(?=[^\W_]))*\.?")
# Lower-case words allowed inside a name ("Tour de France", "Ludwig van Beethoven", "The Shape of Water").
_NAME_LINKS = frozenset("of the de da di du del der van von la le".split())
# Nationality and regional adjectives: capitalised, but a description ("a Turkish company"), not a name.
_DEMONYMS = frozenset(
    """afghan african american arab argentine argentinian asian australian austrian belgian brazilian british
    canadian chinese colombian croatian czech danish dutch egyptian english european filipino finnish french
    german greek hungarian indian indonesian iranian iraqi irish israeli italian japanese kenyan korean
    latin mexican nigerian norwegian pakistani palestinian polish portuguese russian saudi scottish serbian
    spanish swedish swiss syrian thai turkish ukrainian welsh western eastern northern southern""".split()
)
_CALENDAR = frozenset(f"{_MONTHS}|{_DAYS}|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec".split("|"))
# Words that make a capitalised run an organisation, a place, an event or a title rather than a person
# ("Augusta National Golf Club", "Crew List", "Premier League"): a "who" question wants a person's name.
_NOT_PERSON = frozenset(
    """academy agency airline airlines airport album alliance arena army assembly association authority awards
    award bank board bridge cathedral centre center championship championships channel church city club college
    commission committee company conference congress corporation council county court cup department district
    edition festival film fc force forces foundation fund games government group hall hospital hotel house inc
    institute island islands journal kingdom league list ltd magazine ministry motors movie museum network news
    office olympics open orchestra park parliament party plc podcast police post prize programme project records
    republic road school senate series service services show society square stadium states station street
    studios theatre theater times tour tournament tower trophy trust union university valley""".split()
)


# Head nouns of "which/what X" questions, by the kind of answer they ask for. "place" stands for any proper
# noun the question does not already name (a company, a film, a country); "name" for a person.
_PERSON_NOUNS = frozenset(
    """actor actress artist author boss captain cardinal ceo chairman chairwoman chancellor chief coach comedian
    director driver editor executive founder goalkeeper head journalist judge lawyer leader maker man manager member
    minister mp official owner person player politician president presenter producer prosecutor qc rider secretary
    singer skipper spokesman spokeswoman star striker successor winner woman writer""".split()
)
_PROPER_NOUNS = frozenset(
    """agency airline album award band bank brand broadcaster channel city club company companies competition
    constituency council country countries county court department district event festival film firm game group
    island league lender magazine movie network newspaper opponent organisation organization paper party
    programme program publisher region retailer rival school series show side site song sponsor stadium station
    studio supermarket team title tournament town university venue website""".split()
)
_QUANTITY_NOUNS = frozenset(
    """amount attendance bid budget cost debt deficit distance figure fine fee income loss majority margin number
    pay percentage price profit proportion rate revenue salary sales score sentence share size stake sum toll
    total turnover valuation value worth""".split()
)
_TIME_NOUNS = frozenset("date day month year time decade season".split())
_WH = re.compile(r"\b(?:who|whom|whose|when|where|which|what|how)\b", re.I)


def _main_clause(question: str) -> str:
    """The clause holding the question's wh-word: after a leading subordinate clause ("When X did Y, what ...")."""
    clauses = [c for c in re.split(r",\s+", question) if c.strip()]
    asking = [c for c in clauses if _WH.search(c)]
    if len(asking) > 1 and re.match(r"\s*(?:when|if|while|after|before|as|since|once)\b", asking[0], re.I):
        return ", ".join(asking[1:])
    return question


def _head_kind(phrase: str) -> str | None:
    """The kind asked for by the head noun after "which/what" ("which airline", "what was X's majority")."""
    words = [w.strip("’'").removesuffix("’s").removesuffix("'s") for w in phrase.lower().split()[:6]]
    if words and words[0] in ("is", "was", "are", "were"):
        words = words[1:]
    for word in words:
        singular = word[:-1] if word.endswith("s") and word[:-1] in _PROPER_NOUNS | _PERSON_NOUNS else word
        if singular in _TIME_NOUNS:
            return "time"
        if singular in _QUANTITY_NOUNS:
            return "quantity"
        if singular in _PERSON_NOUNS:
            return "name"
        if singular in _PROPER_NOUNS:
            return "place"
        if word in ("is", "was", "are", "were", "did", "does", "do", "has", "have", "had", "will", "would", "can",
                    "could", "should", "of", "for", "in", "on", "to", "by", "from", "with", "about"):
            return None
    return None


def focus_noun(question: str) -> str | None:
    """The noun the question asks for an instance of, when the wh-phrase names one.

    "airline" in "Which new Indian low-cost airline ...", "quarries" in "How many quarries ...".
    """
    q = _main_clause(question)
    if who := re.search(r"\bwho (?:is|was|are|were|has been|had been) (?:the|a|an) ((?:[\w’'-]+\s+){0,3})", q, re.I):
        nouns = [w.lower() for w in who.group(1).split() if w.lower() in _PERSON_NOUNS]
        return nouns[0] if nouns else None
    match = re.search(r"\b(which|what|how many|how much)\s+((?:[\w’'-]+\s+){0,5})", q, re.I)
    if not match:
        return None
    words = match.group(2).split()
    stop = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had", "will", "would", "can", "could",
            "should", "of", "for", "in", "on", "to", "by", "from", "with", "about", "at", "the", "a", "an"}
    if match.group(1).lower().startswith("how"):  # "how many quarries", not "how much did X earn"
        first = words[0].strip("’'").lower() if words else ""
        return first if first and first not in stop else None
    run: list[str] = []
    for word in words:
        bare = word.strip("’'").lower().removesuffix("’s").removesuffix("'s")
        if bare in _TIME_NOUNS | _QUANTITY_NOUNS | _PERSON_NOUNS | _PROPER_NOUNS or (
            bare.endswith("s") and bare[:-1] in _PROPER_NOUNS | _PERSON_NOUNS
        ):
            return bare
        if bare in stop:
            if run:
                break
            continue
        run.append(bare)
    return run[-1] if run and len(run) <= 3 else None


def expected_type(question: str) -> str | None:
    """The kind of answer a question asks for: "name", "time", "quantity", "place" or None.

    Read from the first wh-word of the clause that asks ("When X switched, what proportion ..." asks for a
    quantity; "In which country were they playing when ..." for a proper noun), and from the head noun of
    a "which/what X" phrase ("which airline" wants a proper noun, "what price" an amount, "which QC" a person).
    """
    q = _main_clause(question).lower()
    wh = _WH.search(q)
    if wh is None:
        return None
    rest = q[wh.end():]
    word = wh.group(0)
    if word == "how":
        return "quantity" if re.match(r"\s+(many|much|long|far|old|big|large|high)\b", rest) else None
    if word in ("who", "whom", "whose"):
        return "name"
    if word == "when":
        return "time"
    if word == "where":
        return "place"
    if re.match(r"\s+(number|percentage|share|amount)\b", rest):
        return "quantity"
    if re.match(r"\s+(year|date|day|month|time)\b", rest) or re.search(r"\b((release|premiere|air) date|date of)\b", q):
        return "time"
    if named := re.search(r"\bname of\b(.*)", q):
        # "the name of the truck driver" is a person's; "the name of Microsoft's headset" any proper noun's
        return "name" if _head_kind(named.group(1)) == "name" else "place"
    if re.match(r"\s+(was|is) the name\b", rest):
        return "name"
    if re.match(r"\s+(is|was|are|were)\b.*\b(revenue|revenues|sales|profit|profits|income|earnings|price|cost|"
                r"budget|salary|population|worth|valuation)\b", rest):
        return "quantity"
    # "which X" names a kind only when X is a noun we know ("which airline"); "which ministries" stays open
    return _head_kind(rest)


def has_type(sentence: str, kind: str | None, question: str) -> bool:
    """Whether ``sentence`` contains something of the ``kind`` the question asks for, beyond the question."""
    if kind is None:
        return True
    asked = {w.lower() for w in re.findall(r"[\w’'-]+", question)}
    if kind in ("time", "quantity"):
        pattern = _TIME if kind == "time" else _QUANTITY
        return any(m.group(0).lower() not in asked for m in pattern.finditer(sentence))
    # capitalised words (not opening a sentence) the question does not use
    keys, unsure = answer_keys(sentence, kind, set(tokenize(question)))
    if kind == "place":
        return bool(keys)
    # a name: two capitalised words in a row ("Asif Shahzad") that are not part of an organisation's, a place's
    # or an event's name, or one that speaks ("Qazi said")
    runs = answer_keys(sentence, "name", frozenset())[0]  # the capitalised runs, uncut by the question's words
    return any(_person(key, runs) for key in keys) or any(
        re.search(rf"\b{re.escape(key)}\s+(said|says|told|added|wrote)\b", sentence, re.I)
        for key in keys | unsure if key.split()[-1] not in _NOT_PERSON
    )


def _person(key: str, runs: AbstractSet[str]) -> bool:
    """Whether the name ``key`` (two words or more) can be a person's.

    Not when it ends an organisation's or a place's name, even where the question's words cut that name
    ("Augusta National" of "Augusta National Golf Club"): ``runs`` are the sentence's whole capitalised runs.
    """
    if " " not in key:
        return False
    for run in runs:
        for part in run.split(" of "):
            if within(key, part) and part.split()[-1] in _NOT_PERSON:
                return False
    return key.split()[-1] not in _NOT_PERSON


def complete_dates(sentence: str) -> set[str]:
    """Keys (as :func:`answer_keys` makes them) of the dates ``sentence`` gives with day, month and year.

    "Nov. 12, 2020" or "20th April 2018" is complete; "Nov. 12" is not, and neither is the dateline.
    """
    body = DATELINE.sub("", sentence, count=1)
    return _date_keys(body, set(), complete=True)


def answer_keys(sentence: str, kind: str, asked: AbstractSet[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Candidate answers of ``kind`` that ``sentence`` states and the question does not, as folded keys.

    A key folds the spellings of one answer together: "Nov. 12, 2020" and "November 12" are both
    ``"nov-12"``, "$10.4 billion" is ``"$10.4billion"``, "Toy Story 4" is ``"toy story 4"``. A leading
    dateline is skipped: it tells when the snippet was written, not what happened.

    Args:
        sentence: the text to read.
        kind: what the question asks for (see :func:`expected_type`).
        asked: the question's tokens, as :func:`~retrieval.lexical.tokenize` makes them.

    Returns:
        (keys, unsure): unsure keys are single capitalised words opening a sentence, which are names
        only if they are capitalised elsewhere too.
    """
    return _answer_keys(sentence, kind, frozenset(asked))


@lru_cache(maxsize=8192)  # the searcher and the answerer read the same texts for one question
def _answer_keys(sentence: str, kind: str, asked: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    body = DATELINE.sub("", sentence, count=1)
    if kind == "time":
        return frozenset(_date_keys(body, asked)), frozenset()
    if kind == "quantity":
        return frozenset(_amount_keys(body, asked)), frozenset()
    keys, unsure = _name_keys(body, asked)
    return frozenset(keys), frozenset(unsure)


def _asked(word: str, asked: set[str]) -> bool:
    tokens = [t for t in tokenize(word) if t != "s"]
    return bool(tokens) and all(t in asked for t in tokens)


def _date_keys(body: str, asked: set[str], complete: bool = False) -> set[str]:
    return {key for key, _, _ in _date_items(body, asked, complete)}


def _date_items(body: str, asked: AbstractSet[str], complete: bool = False) -> list[tuple[str, int, int]]:
    """Dates in ``body`` as (folded key, start, end)."""
    items = []
    for m in _DATE.finditer(body):
        month = m.group("m1") or m.group("m2") or m.group("m3")
        if (month and not month[0].isupper()) or (complete and not (m.group("y1") or m.group("y2"))):
            continue  # "may" the verb, or not a whole date
        day = m.group("d1") or m.group("d2")
        if month and day and str(int(day)) in asked and any(a[:3] == month[:3].lower() for a in asked):
            continue  # the date the question itself names ("if the election is on 5 May, ...")
        if month and day:
            if 1 <= int(day) <= 31:
                items.append((f"{month[:3].lower()}-{int(day)}", m.start(), m.end()))
        elif month:
            items.append((f"{month[:3].lower()}-{m.group('y3')}", m.start(), m.end()))
        elif m.group("y4") not in asked:
            items.append((m.group("y4"), m.start(), m.end()))
    return items


def _amount_keys(body: str, asked: set[str]) -> set[str]:
    return {key for key, _, _ in _amount_items(body, asked)}


def _amount_items(body: str, asked: AbstractSet[str]) -> list[tuple[str, int, int]]:
    """Amounts in ``body`` as (folded key, start, end); the numbers of a date are not amounts."""
    body = _DATE.sub(lambda m: " " * len(m.group(0)), body)
    items = []
    for m in _AMOUNT.finditer(body):
        text = m.group(0).lower()
        text = re.sub(r"[a-z]+", lambda w: _NUMBER_WORDS.get(w.group(0), w.group(0)), text)  # "two" is "2"
        text = text.replace(" ", "").replace("percent", "%")  # "per cent" too, once unspaced
        number = re.sub(r"[^\d.]", "", text).strip(".")
        if not number or number in asked or (text == number and re.fullmatch(YEAR, number)):
            continue
        digits = [t for t in tokenize(m.group(0)) if t[0].isdigit()]
        if digits and all(t in asked for t in digits):
            continue  # "150,000" when the question names 150,000 tickets
        items.append((text, m.start(), m.end()))
    return items


_UNIT = re.compile(
    r"\s?(?:[KMGT]B|GHz|MHz|mph|kph|km|kg|cm|mm|ft|lbs?)\b|\s(?:(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|miles?|metres?|meters?|km|kg|tonnes?|"
    r"goals?|points?|runs?|votes?|seats?|people|men|women|children)\b|(?![a-z]*(?:ss|us)\b)[a-z]{3,}s\b)"
)


# A contest's margin, not a total: "412 votes ahead of", "by just 96 votes", "a 96-vote margin", "a majority
# of 2,000", "12 points clear". "How many votes did she receive" is not answered by one.
_CONTESTED = r"votes?|points?|goals?|runs?|seats?|strokes?|shots?|lengths?|wickets?"
_MARGIN_AFTER = re.compile(
    rf"[\s-]*(?:{_CONTESTED}|games?|places?)?"
    r"\s*(?:margin\b|majority\b|lead\b|(?:ahead|clear) of\b|behind\b|(?:more|fewer) than\b|ahead\b|clear\b)",
    re.I,
)
_MARGIN_BEFORE = re.compile(
    r"(?:\b(?:margin|majority|lead) of|\bby)\s+(?:just |only |a mere |some |about |around |nearly |almost )?$",
    re.I,
)
_CONTEST_UNIT = re.compile(rf"[\s-]*(?:{_CONTESTED})\b", re.I)


_ASKS_MARGIN = re.compile(
    r"\b(?:margin|majority|lead|gap|difference|by how (?:many|much)|how (?:many|much) (?:more|fewer|less)|"
    r"how far (?:ahead|behind|clear))\b",
    re.I,
)


def asks_margin(question: str) -> bool:
    """Whether the question asks for a margin or a difference ("by how many votes", "what was her majority")."""
    return bool(_ASKS_MARGIN.search(question))


def is_margin(text: str, start: int, end: int) -> bool:
    """Whether the number at ``text[start:end]`` is a contest's margin ("by 389 votes", "412 votes ahead of")."""
    if _MARGIN_AFTER.match(text, end):
        return True
    before = _MARGIN_BEFORE.search(text[max(0, start - 40) : start])
    if before is None:
        return False
    # "by" alone is a margin only for a contest's unit ("won by 96 votes"), not a change ("rose by 5%")
    number = re.match(r"[\d,.]+|\w+", text[start:end])  # the span may hold its unit already ("96 votes")
    return not before.group(0).lower().startswith("by") or bool(
        _CONTEST_UNIT.match(text, start + (number.end() if number else 0))
    )


def item_spans(sentence: str, kind: str, asked: AbstractSet[str]) -> list[tuple[str, int, int]]:
    """The candidate answers of ``kind`` in ``sentence`` as (key, start, end), verbatim spans of it.

    The keys are those of :func:`answer_keys` (unsure single capitalised words included).
    """
    match = DATELINE.match(sentence)
    offset = match.end() if match else 0
    body = sentence[offset:]
    if kind == "time":
        found = _date_items(body, asked)
    elif kind == "quantity":  # with the unit or noun counted, when one follows ("50 minutes", "142 quarries")
        found = []
        for key, start, end in _amount_items(body, asked):
            unit = _UNIT.match(body, end)
            found.append((key, start, unit.end() if unit else end))
    else:
        keys, unsure = answer_keys(sentence, kind, asked)
        found = []
        for key in sorted(keys | unsure, key=len, reverse=True):
            pattern = r"(?<!\w)" + r"[\s-]+".join(re.escape(w) for w in key.split()) + r"(?!\w)"
            if m := re.search(pattern, body, re.I):
                found.append((key, m.start(), m.end()))
    return sorted(((key, start + offset, end + offset) for key, start, end in found), key=lambda x: x[1])


def _name_keys(body: str, asked: set[str]) -> tuple[set[str], set[str]]:
    """Runs of capitalised words ("Hideki Matsuyama", "Toy Story 4", "The Shape of Water").

    A run is cut where the question's own words or calendar words stand ("Tesla CEO Elon Musk" gives
    "elon musk"); what is left of a cut run counts only when it is more than one word.
    """
    runs: list[tuple[list[str], bool]] = []  # words, and whether the run opens a sentence
    words: list[str] = []
    opens = True
    end = 0
    for m in _WORD.finditer(body):
        word = m.group(0).rstrip("’'")
        stop = word.endswith(".") and not re.fullmatch(r"(?:[^\W\d_]\.)+", word)  # not "B." or "U.S."
        word = word.rstrip(".") if stop else word
        joined = body[end : m.start()].strip() == "" and bool(words)
        capital = word[0].isupper() or (word[0].isdigit() and joined)
        if joined and (capital or word.lower() in _NAME_LINKS):
            words.append(word)
        else:
            if words:
                runs.append((words, opens))
            gap = body[:m.start()].rstrip()
            opens = not gap or gap[-1] in ".!?…:;·|"
            words = [word] if capital else []
        end = m.end()
        if stop:
            if words:
                runs.append((words, opens))
            words, opens = [], True
        elif words and re.search(r"[’']s$", word):  # a possessive ends a name: "Romania's | Simona Halep"
            runs.append((words, opens))
            words, opens = [], False
    if words:
        runs.append((words, opens))
    keys, unsure = set(), set()
    for run, run_opens in runs:
        segments: list[list[str]] = [[]]
        cut = False
        for word in run:
            if word.lower() in _CALENDAR or _asked(word, asked):
                segments.append([])
                cut = cut or word.lower() not in _CALENDAR
            else:
                segments[-1].append(word)
        for i, seg in enumerate(segments):
            while seg and (seg[0].lower() in STOPWORDS or seg[0].lower() in _NAME_LINKS):
                seg = seg[1:]
            while seg and seg[-1].lower() in _NAME_LINKS:
                seg = seg[:-1]
            if not seg or seg[0][0].isdigit() or (cut and len(seg) == 1):
                continue
            if len(seg) == 1 and seg[0].lower() in _DEMONYMS:
                continue
            if len(seg) > 1 and not any(c.islower() for w in seg for c in w):
                continue  # a heading in capitals ("GRAVE SECURITY BREACH"), not a name
            key = " ".join(re.sub(r"[’']s$", "", w.lower()) for w in seg)
            (unsure if len(seg) == 1 and i == 0 and run_opens and seg[0] == run[0] else keys).add(key)
            # the parts either side of "of" stand alone too ("Shane Lowry of Ireland")
            parts = key.split(" of ")
            keys.update(part for part in parts if len(parts) > 1 and part)
    return keys, unsure


def within(key: str, other: str) -> bool:
    """Whether the words of ``key`` occur, in order and together, among those of ``other``."""
    return key == other or f" {key} " in f" {other} "


def stated_answers(texts: Sequence[str], kind: str, asked: AbstractSet[str]) -> list[frozenset[str]]:
    """The candidate answers each of ``texts`` states (see :func:`answer_keys`).

    A single capitalised word opening a sentence counts only if some text has it mid-sentence too.
    """
    found = [answer_keys(text, kind, asked) for text in texts]
    proper = set().union(*(keys for keys, _ in found))
    return [keys | (unsure & proper) for keys, unsure in found]


def answer_support(
    stated: Sequence[AbstractSet[str]], articles: Sequence[str], weights: Sequence[float]
) -> dict[str, float]:
    """How strongly the articles agree on each candidate answer, relative to the best-supported one (0-1).

    Answer redundancy, as in AskMSR (Brill et al., 2002): each article backs a candidate with the
    weight of its best text stating it, and a candidate's support is the sum over articles. Partial
    names back each other ("Buckley", "Tim Buckley" and "CIO Tim Buckley").
    """
    candidates = set().union(*stated)
    by_word: dict[str, set[str]] = defaultdict(set)  # keys that can back each other share a word
    for key in candidates:
        for word in key.split():
            by_word[word].add(key)
    support: dict[str, float] = {}
    for key in candidates:
        related = {o for word in key.split() for o in by_word[word] if within(key, o) or within(o, key)}
        backing: dict[str, float] = {}
        for keys, article, weight in zip(stated, articles, weights, strict=True):
            if not related.isdisjoint(keys):
                backing[article] = max(backing.get(article, 0.0), max(weight, 0.0))
        support[key] = sum(backing.values())
    top = max(support.values(), default=0.0) or 1.0
    return {key: value / top for key, value in support.items()}
