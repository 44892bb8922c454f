"""Evidence-citing term spotting in Hebrew and English customer free text.

Churn signals need to know whether a contact or complaint talks about a
competitor, asks for compensation, is hostile to staff, reports a technical
fault or says the customer is leaving, and call-centre staff must see *which
words* triggered it.  So this is curated lexicons plus a few spelling rules, not
a model: every match is explainable, deterministic and costs no downloads.

Hebrew needs more than a word list: one-letter prefixes glue onto words
("והתקלה" = "and the fault"), niqqud is optional, final letters may be typed as
regular ones and vowel letters (ו, י) come and go between spellings.  English
needs only light inflection ("refunded", "crashing").  Matching therefore runs
on normalized tokens while each token keeps its span in the original text, so
a match can cite the words exactly as the customer wrote them.
"""

# Hebrew letters such as ו and י look like Latin ones to ruff; here they are the point.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CATEGORIES",
    "DEFAULT_LEXICON",
    "DEFAULT_TERMS",
    "NEGATED_CATEGORIES",
    "Lexicon",
    "Match",
    "normalize",
    "same_word",
]

CATEGORIES: tuple[str, ...] = ("competitor", "compensation", "hostile", "fault", "leave_intent")

#: "I will not leave" is not a threat to leave and "you were not rude" is no
#: insult, but "no refund!" is still a compensation demand and "not cheaper at X"
#: still names a competitor, so only these categories honour a negation.
NEGATED_CATEGORIES: frozenset[str] = frozenset({"hostile", "leave_intent", "fault"})


@dataclass(frozen=True, slots=True)
class Match:
    """One lexicon hit, with the customer's own words as evidence."""

    category: str
    term: str
    words: str


# --- normalization ----------------------------------------------------------

# Niqqud and cantillation are combining marks; maqaf, paseq, sof pasuq and nun
# hafukha sit in the same block but are punctuation, so they separate words.
_HEBREW_MARKS = "\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
# Apostrophes, quotes, geresh and gershayim inside a word are spelling
# ("don't", צה"ל, ג'ירפה), not punctuation: they are dropped, not split on.
_QUOTES = "'\"`\u00b4\u05f3\u05f4\u2018\u2019\u201c\u201d"
_WORD_CHAR = rf"(?:[^\W_]|[{_HEBREW_MARKS}\u0300-\u036f])"
_RAW_WORD = re.compile(rf"{_WORD_CHAR}+(?:[{_QUOTES}]+{_WORD_CHAR}+)*")
_PIECE = re.compile(rf"{_WORD_CHAR}+")
_DROP = re.compile(rf"[{_HEBREW_MARKS}{_QUOTES}]")
_FINALS = str.maketrans("ךםןףץ", "כמנפצ")
_HEBREW_LETTER = re.compile("[\u05d0-\u05ea]")
_PREFIX_LETTERS = frozenset("והבלמשכ")
_MAX_PREFIXES = 3
_DOUBLED_VOWEL_LETTER = re.compile("(ו)ו+|(י)י+")


@dataclass(frozen=True, slots=True)
class _Token:
    norm: str
    start: int
    end: int


def _fold(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).lower()
    return _DROP.sub("", text).translate(_FINALS)


def _tokens(text: str) -> list[_Token]:
    """Normalized tokens with their spans in ``text``, so matches can cite originals."""
    out: list[_Token] = []
    for m in _RAW_WORD.finditer(text):
        # NFKC can, rarely, expand one raw word into several (e.g. "½" -> "1⁄2").
        out.extend(_Token(p, m.start(), m.end()) for p in _PIECE.findall(_fold(m.group())))
    return out


def normalize(text: str) -> str:
    """Canonical form used for matching, so lexicon authors and customers needn't agree
    on case, niqqud, final letters, in-word quotes or punctuation."""
    if not text:
        return ""
    return " ".join(t.norm for t in _tokens(text))


# --- word equivalence -------------------------------------------------------


def _is_hebrew(word: str) -> bool:
    return _HEBREW_LETTER.search(word) is not None


def _hebrew_key(word: str) -> str:
    """One key per Hebrew spelling family, so equal keys <=> ``same_word``.

    Ktiv male and ktiv haser differ by vowel letters ("ניתוק"/"נתוק"), so words
    are compared without ו and י; below three letters that skeleton is too
    ambiguous ("עיר" city vs "ער" awake), so short words only lose doubled ו/י.
    """
    collapsed = _DOUBLED_VOWEL_LETTER.sub(r"\1\2", word)
    skeleton = collapsed.replace("ו", "").replace("י", "")
    return "~" + skeleton if len(skeleton) >= 3 else "=" + collapsed


def same_word(a: str, b: str) -> bool:
    """Whether two words are spelling variants that the lexicon treats as equal
    (Hebrew: niqqud, final letters, doubled or added ו/י; any: case)."""
    na, nb = normalize(a), normalize(b)
    if _is_hebrew(na) or _is_hebrew(nb):
        return _hebrew_key(na) == _hebrew_key(nb)
    return na == nb


def _english_stems(word: str) -> list[str]:
    """Candidate base forms, so a term like "refund" or "cancel" needs no inflected copies."""
    stems = [word]
    for suffix in ("ing", "ed", "es", "s"):
        base = word[: -len(suffix)]
        if not word.endswith(suffix) or len(base) < 2:
            continue
        stems.append(base)
        if suffix in ("ing", "ed"):
            stems.append(base + "e")  # leaving -> leave, terminated -> terminate
            if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "aeiou":
                stems.append(base[:-1])  # stopped -> stop, cancelled -> cancel
    return list(dict.fromkeys(stems))


@lru_cache(maxsize=65536)
def _keys(token: str) -> frozenset[str]:
    """Index keys a token can match as itself (no prefix stripping)."""
    if _is_hebrew(token):
        return frozenset({_hebrew_key(token)})
    return frozenset(_english_stems(token))


@lru_cache(maxsize=65536)
def _first_keys(token: str) -> tuple[tuple[str, int, str], ...]:
    """(key, letters stripped, remainder) for a token that may open a phrase.

    Hebrew glues up to three prefixes (ו ה ב ל מ ש כ) onto a word; "כש" (when)
    counts as one, as in "וכשהמחיר".  The remainder must keep two letters so
    that short words are not eaten away.
    """
    out: dict[str, tuple[str, int, str]] = {}
    for strip in range(5):
        prefix, rest = token[:strip], token[strip:]
        if strip and (prefix[-1] not in _PREFIX_LETTERS or len(rest) < 2):
            break
        if strip - prefix.count("כש") > _MAX_PREFIXES:
            break
        for key in _keys(rest):
            out.setdefault(key, (key, strip, rest))
    return tuple(out.values())


# --- negation ---------------------------------------------------------------

# The brief's list plus the other common English contractions of "not".
_NEGATORS_EN = [
    "not", "no", "never", "dont", "didnt", "wont", "isnt", "wasnt", "without", "hardly",
    "doesnt", "arent", "werent", "wouldnt", "shouldnt", "havent", "hasnt", "nor",
]
_NEGATORS_HE = ["לא", "אין", "בלי", "אל", "מעולם", "אינני", "אינו", "איני", "אינה"]


def _negators() -> frozenset[str]:
    """Negators incl. "and not"/"that not" forms; "מלא" (full) must not read as "לא"."""
    forms = set(_NEGATORS_EN) | {normalize(w) for w in _NEGATORS_HE}
    forms |= {"ו" + normalize(w) for w in _NEGATORS_HE}
    for w in ("לא", "אין", "בלי"):
        forms |= {p + w for p in ("ש", "וש", "כש")}
    return frozenset(forms)


_NEGATORS = _negators()
_NEGATION_WINDOW = 2


# --- lexicon ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    category: str
    term: str
    first: str  # first normalized word, to prefer exact spellings over variants
    rest: tuple[str, ...]  # keys of the following words; "^x" = prefix letter x
    order: int


def _word_key(word: str) -> str:
    if _is_hebrew(word):
        # "לעבור ל": a lone prefix letter stands for "glued onto the next word".
        return "^" + word if len(word) == 1 and word in _PREFIX_LETTERS else _hebrew_key(word)
    return word


def _rest_matches(keys: tuple[str, ...], tokens: list[_Token], at: int) -> bool:
    for offset, key in enumerate(keys):
        token = tokens[at + offset].norm
        if key.startswith("^"):
            if not (token == key[1] or (token.startswith(key[1]) and len(token) >= 3)):
                return False
        elif key not in _keys(token):
            return False
    return True


class Lexicon:
    """Category -> terms, compiled once into an index on the first word's key,
    because ``find`` runs for every event in the stream processor."""

    __slots__ = ("_index", "_terms")

    def __init__(self, terms: dict[str, list[str]]) -> None:
        unknown = set(terms) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown lexicon categories: {sorted(unknown)}")
        self._terms: dict[str, tuple[str, ...]] = {c: tuple(terms.get(c, ())) for c in CATEGORIES}
        self._index: dict[str, list[_Entry]] = {}
        seen: set[tuple[str, tuple[str, ...]]] = set()
        order = 0
        for category, category_terms in self._terms.items():
            for term in category_terms:
                words = normalize(term).split()
                if not words:
                    continue  # a blank policy entry should not break start-up
                keys = tuple(_word_key(w) for w in words)
                if (category, keys) in seen:
                    continue  # "שערוריה"/"שערורייה": one spelling family, one entry
                seen.add((category, keys))
                entry = _Entry(category, term, words[0], keys[1:], order)
                first_key = _hebrew_key(words[0]) if _is_hebrew(words[0]) else words[0]
                self._index.setdefault(first_key, []).append(entry)
                order += 1

    @property
    def terms(self) -> dict[str, list[str]]:
        """A copy of the source terms per category (for display and extension)."""
        return {c: list(t) for c, t in self._terms.items()}

    def extended(self, extra: dict[str, list[str]]) -> Lexicon:
        """A new lexicon with ``extra`` appended, leaving this one (often shared) intact."""
        merged = self.terms
        for category, more in extra.items():
            merged.setdefault(category, []).extend(more)
        return Lexicon(merged)

    def find(self, text: str | None) -> list[Match]:
        """All matches in text order, at most one per (category, start word).

        At one start the longest, then least-stripped, then earliest-listed term
        wins; a match inside a longer one of the same category is dropped, so
        the evidence shown is not repetitive.
        """
        if not text or not isinstance(text, str):
            return []
        tokens = _tokens(text)
        best: dict[tuple[str, int], tuple[tuple[int, ...], _Entry]] = {}
        for i, token in enumerate(tokens):
            for key, strip, rest in _first_keys(token.norm):
                for entry in self._index.get(key, ()):
                    if i + 1 + len(entry.rest) > len(tokens):
                        continue
                    if not _rest_matches(entry.rest, tokens, i + 1):
                        continue
                    inexact = int(entry.first != rest)
                    rank = (-1 - len(entry.rest), strip, inexact, entry.order)
                    slot = (entry.category, i)
                    if slot not in best or rank < best[slot][0]:
                        best[slot] = (rank, entry)
        # A negator inside a phrase ("לא עובד", "not working") belongs to that
        # phrase: it must not also cancel what follows ("not working, broken").
        in_phrase = {
            j for (_, i), (_, e) in best.items() if e.rest for j in range(i, i + 1 + len(e.rest))
        }
        matches: list[Match] = []
        covered: dict[str, int] = {}
        for (category, i), (_, entry) in sorted(
            best.items(), key=lambda kv: (kv[0][1], CATEGORIES.index(kv[0][0]))
        ):
            end = i + 1 + len(entry.rest)
            if end <= covered.get(category, 0):
                continue
            if category in NEGATED_CATEGORIES and _negated(tokens, i, in_phrase):
                continue
            covered[category] = end
            matches.append(Match(category, entry.term, _cite(text, tokens[i:end])))
        return matches


def _negated(tokens: list[_Token], start: int, in_phrase: set[int]) -> bool:
    window = range(max(0, start - _NEGATION_WINDOW), start)
    return any(tokens[j].norm in _NEGATORS and j not in in_phrase for j in window)


def _cite(text: str, tokens: list[_Token]) -> str:
    spans = dict.fromkeys((t.start, t.end) for t in tokens)  # NFKC pieces share a span
    return " ".join(text[s:e] for s, e in spans)


# --- default lexicons --------------------------------------------------------

DEFAULT_TERMS: dict[str, list[str]] = {
    "competitor": [
        "competitor", "competitors", "competition", "price match", "match the price",
        "cheaper elsewhere", "cheaper at", "better offer", "better deal", "better price",
        "other company", "another company", "other provider", "another provider",
        "switch to", "switching to", "moving to",
        "מתחרים", "מתחרה", "זול יותר", "יותר זול", "הצעה טובה יותר", "הצעה יותר טובה",
        "מחיר יותר טוב", "מחיר טוב יותר", "חברה אחרת", "ספק אחר", "לעבור ל", "עוברים ל",
        "עובר ל", "עוברת ל", "נעבור ל", "אעבור ל", "להשוות מחיר", "התאמת מחיר",
    ],
    "compensation": [
        "refund", "compensation", "compensate", "money back", "reimburse", "reimbursement",
        "credit my account", "discount for the trouble", "pay me back", "damages",
        "פיצוי", "פיצויים", "לפצות", "החזר", "החזר כספי", "זיכוי", "כסף בחזרה",
        "להחזיר לי", "הנחה על הטרחה",
    ],
    "hostile": [
        "ridiculous", "useless", "incompetent", "idiot", "idiots", "stupid", "disgrace",
        "disgraceful", "scam", "scammers", "liars", "lying", "pathetic", "unacceptable",
        "fed up", "sick of", "shame on you", "worst service", "rude", "clowns", "thieves",
        "בושה", "חוצפה", "חצופים", "גנבים", "שקרנים", "מטומטמים", "אפסים", "נמאס", "זלזול",
        "מזלזלים", "מגעיל", "רמאים", "חסרי אחריות", "עלבון", "גועל נפש", "ליצנים",
        "שערוריה", "שערורייה", "גסות רוח", "חוסר כבוד",
    ],
    "fault": [
        "broken", "not working", "doesnt work", "stopped working", "outage", "disconnected",
        "disconnects", "disconnecting", "crash", "error", "fault", "faulty", "defect",
        "defective", "down again", "keeps failing", "failed", "no signal", "slow internet",
        "no internet", "not loading",
        "תקלה", "תקלות", "לא עובד", "לא עובדת", "לא עובדים", "מקולקל", "מקולקלת", "שבור",
        "שבורה", "נפל", "נופל", "ניתוק", "ניתוקים", "מתנתק", "מתנתקת", "אין קליטה",
        "אין אינטרנט", "לא מתחבר", "איטי", "איטית", "באג", "נתקע", "תקוע",
    ],
    "leave_intent": [
        "cancel", "cancellation", "leave", "leaving", "terminate", "close my account",
        "quit", "unsubscribe me", "end my contract",
        "לבטל", "ביטול", "אבטל", "נבטל", "מבטל", "מבטלת", "לעזוב", "עוזב", "עוזבת",
        "אעזוב", "נעזוב", "להתנתק", "לסגור את החשבון", "לסיים את החוזה",
    ],
}

DEFAULT_LEXICON: Lexicon = Lexicon(DEFAULT_TERMS)
