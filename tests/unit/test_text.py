"""Lexicon matching on Hebrew and English customer text (stream_app.core.text)."""

# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.text import (
    CATEGORIES,
    DEFAULT_LEXICON,
    DEFAULT_TERMS,
    NEGATED_CATEGORIES,
    Lexicon,
    Match,
    normalize,
    same_word,
)


def hits(text: str, lexicon: Lexicon = DEFAULT_LEXICON) -> list[tuple[str, str, str]]:
    return [(m.category, m.term, m.words) for m in lexicon.find(text)]


def categories(text: str, lexicon: Lexicon = DEFAULT_LEXICON) -> set[str]:
    return {m.category for m in lexicon.find(text)}


# --- API shape ------------------------------------------------------------------


def test_public_constants() -> None:
    assert CATEGORIES == ("competitor", "compensation", "hostile", "fault", "leave_intent")
    assert frozenset({"hostile", "leave_intent", "fault"}) == NEGATED_CATEGORIES
    assert set(DEFAULT_TERMS) == set(CATEGORIES)
    assert DEFAULT_LEXICON.terms == DEFAULT_TERMS


def test_match_is_frozen_value() -> None:
    m = Match("fault", "תקלה", "והתקלה")
    assert m == Match("fault", "תקלה", "והתקלה")
    with pytest.raises(AttributeError):
        m.term = "x"  # type: ignore[misc]


# --- normalize ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello,   WORLD!! ", "hello world"),
        ("תַּקָּלָה", "תקלה"),
        ("ךםןףץ", "כמנפצ"),
        ('צה"ל ו-ג\'ירפה', "צהל ו גירפה"),
        ("צה״ל וצ׳יפס", "צהל וציפס"),
        ("don't doesn't won't isn't can't", "dont doesnt wont isnt cant"),
        ("it’s", "its"),
        ("'quoted'", "quoted"),
        ("בית־ספר", "בית ספר"),  # maqaf joins words but is punctuation
        ("price-match/now", "price match now"),
        ("", ""),
        ("😡!!", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


# --- English ----------------------------------------------------------------------


def test_english_inflection_cites_original_words() -> None:
    assert hits("They REFUNDED nothing") == [("compensation", "refund", "REFUNDED")]


@pytest.mark.parametrize(
    ("text", "category", "term", "words"),
    [
        ("the app crashes", "fault", "crash", "crashes"),
        ("it keeps crashing", "fault", "crash", "crashing"),
        ("two refunds please", "compensation", "refund", "refunds"),
        ("I cancelled it", "leave_intent", "cancel", "cancelled"),
        ("I'm quitting", "leave_intent", "quit", "quitting"),
        ("we're terminating", "leave_intent", "terminate", "terminating"),
        ("the competitor's offer", "competitor", "competitors", "competitor's"),
        ("It doesn't work", "fault", "doesnt work", "doesn't work"),
        ("Closing my account", "leave_intent", "close my account", "Closing my account"),
    ],
)
def test_english_inflections(text: str, category: str, term: str, words: str) -> None:
    assert (category, term, words) in hits(text)


def test_exact_term_wins_over_inflected_one_at_same_position() -> None:
    # "leaving" is both the term "leaving" and an inflection of "leave": one match.
    assert hits("I am leaving") == [("leave_intent", "leaving", "leaving")]
    assert hits("switching to them") == [("competitor", "switching to", "switching to")]


def test_phrase_needs_consecutive_words() -> None:
    assert categories("money for nothing, back later") == set()
    assert hits("I want my money back") == [("compensation", "money back", "money back")]


# --- Hebrew: prefixes, niqqud, final letters, spelling variants ------------------


def test_hebrew_prefixes_on_competitor_text() -> None:
    assert hits("וכשהמחיר אצל המתחרים זול יותר") == [
        ("competitor", "מתחרים", "המתחרים"),
        ("competitor", "זול יותר", "זול יותר"),
    ]


@pytest.mark.parametrize(
    ("text", "category", "words"),
    [
        ("והתקלה חזרה שוב", "fault", "והתקלה"),
        ("וכשהתקלה חזרה", "fault", "וכשהתקלה"),  # ו + כש + ה: "כש" is one prefix
        ("אני דורש פיצוי", "compensation", "פיצוי"),
        ("מגיע לי פיצוי, אני זכאי לפיצוי", "compensation", "לפיצוי"),
        ("זה בגלל שהחברה והמתחרה", "competitor", "והמתחרה"),
        ("אני רוצה לבטל", "leave_intent", "לבטל"),
        ("ולבטל את זה", "leave_intent", "ולבטל"),
    ],
)
def test_hebrew_prefixes(text: str, category: str, words: str) -> None:
    assert (category, words) in {(m.category, m.words) for m in DEFAULT_LEXICON.find(text)}


def test_prefix_stripping_limits() -> None:
    # Four stacked one-letter prefixes are not Hebrew; the remainder keeps two letters.
    assert categories("ולבהתקלה") == set()
    lex = Lexicon({"fault": ["בא"]})
    assert categories("שבא", lex) == {"fault"}
    assert categories("וא", Lexicon({"fault": ["א"]})) == set()


def test_prefix_stripping_only_on_first_word_of_phrase() -> None:
    assert categories("הזול יותר") == {"competitor"}
    assert categories("זול ויותר") == set()


def test_trailing_prefix_letter_in_phrase_attaches_to_next_word() -> None:
    assert hits("אני רוצה לעבור לפרטנר") == [("competitor", "לעבור ל", "לעבור לפרטנר")]
    assert hits("אנחנו עוברים ל-HOT") == [("competitor", "עוברים ל", "עוברים ל")]
    assert categories("אני צריך לעבור דירה") == set()  # moving house is not churn


def test_niqqud_is_ignored_and_kept_in_citation() -> None:
    assert hits("יֵשׁ תַּקָּלָה") == [("fault", "תקלה", "תַּקָּלָה")]
    assert hits("בּוּשָׁה") == [("hostile", "בושה", "בּוּשָׁה")]


def test_final_letters_either_way() -> None:
    # Lexicon term with a final letter, text typed with the regular form ...
    assert hits("גנבימ") == [("hostile", "גנבים", "גנבימ")]
    # ... and a term written with the regular form matches text with the final form.
    lex = Lexicon({"hostile": ["שקרנימ"]})
    assert hits("אתם שקרנים", lex) == [("hostile", "שקרנימ", "שקרנים")]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("ניתוק", "נתוק", True),  # ktiv male / haser: extra yod
        ("זלזול", "זילזול", True),
        ("מקולקל", "מקלקל", True),  # extra vav
        ("שערוריה", "שערורייה", True),  # doubled yod
        ("תַּקָּלָה", "תקלה", True),
        ("גנבים", "גנבימ", True),
        ("Refund", "REFUND", True),
        ("עיר", "ער", False),  # skeleton under 3 letters is too ambiguous
        ("איטי", "אטי", False),
        ("תקלה", "תקלות", False),
        ("refund", "refunds", False),  # inflection is a matching rule, not spelling
    ],
)
def test_same_word_spelling_variants(a: str, b: str, same: bool) -> None:
    assert same_word(a, b) is same
    assert same_word(b, a) is same


def test_spelling_variants_in_find() -> None:
    assert hits("נתוק כל יום") == [("fault", "ניתוק", "נתוק")]
    assert hits("איזה זילזול") == [("hostile", "זלזול", "זילזול")]
    # Both spellings are in the lexicon but form one family: one match, not two.
    assert len(DEFAULT_LEXICON.find("שערורייה")) == 1


# --- negation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I will not leave",
        "I'm never leaving you",
        "לא אעזוב אתכם",
        "ולא אעזוב",
        "you were not rude",
        "you weren't rude at all",
        "it isn't broken",
        "אין תקלה",
        "לא רוצה לבטל",
    ],
)
def test_negation_cancels_negated_categories(text: str) -> None:
    assert categories(text) & NEGATED_CATEGORIES == set()


@pytest.mark.parametrize(
    ("text", "term", "words"),
    [
        ("it is not working", "not working", "not working"),
        ("הראוטר לא עובד", "לא עובד", "לא עובד"),
        ("הראוטר שוב לא עובדת", "לא עובדת", "לא עובדת"),
        ("no signal since Monday", "no signal", "no signal"),
        ("אין קליטה בבית", "אין קליטה", "אין קליטה"),
    ],
)
def test_negator_inside_phrase_is_not_a_negation(text: str, term: str, words: str) -> None:
    assert hits(text) == [("fault", term, words)]


def test_negator_inside_phrase_does_not_cancel_what_follows() -> None:
    assert hits("not working, broken") == [
        ("fault", "not working", "not working"),
        ("fault", "broken", "broken"),
    ]
    assert hits("הראוטר לא עובד והתקלה חזרה") == [
        ("fault", "לא עובד", "לא עובד"),
        ("fault", "תקלה", "והתקלה"),
    ]


def test_negation_scope() -> None:
    # Leaving is affirmed: the negator is three tokens before the match.
    assert "leave_intent" in categories("not sure, I'll leave")
    # "מלא" (full) is not "לא" behind a prefix.
    assert categories("מלא תקלות") == {"fault"}
    # Compensation and competitor ignore negation: "no refund?!" is still a demand.
    assert categories("no refund?!") == {"compensation"}
    assert categories("never cheaper elsewhere") == {"competitor"}


# --- extension ------------------------------------------------------------------------


def test_extended_adds_competitor_names_with_hebrew_prefixes() -> None:
    lex = DEFAULT_LEXICON.extended({"competitor": ["Partner", "בזק"]})
    assert hits("עברתי מבזק", lex) == [("competitor", "בזק", "מבזק")]
    assert hits("Partner offered me less", lex) == [("competitor", "Partner", "Partner")]
    assert hits("הלכתי לPartner", lex) == [("competitor", "Partner", "לPartner")]
    # Inside a longer competitor phrase the name is not cited twice.
    assert hits("עוברת לPartner", lex) == [("competitor", "עוברת ל", "עוברת לPartner")]
    # The original, shared lexicon is untouched.
    assert categories("עברתי מבזק") == set()
    assert "Partner" not in DEFAULT_LEXICON.terms["competitor"]


def test_extended_keeps_default_terms_and_adds_categories() -> None:
    lex = DEFAULT_LEXICON.extended({"hostile": ["חמורים"]})
    assert categories("אתם חמורים ושקרנים", lex) == {"hostile"}
    assert len(lex.find("אתם חמורים ושקרנים")) == 2


def test_lexicon_rejects_unknown_category_and_skips_blank_terms() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Lexicon({"angry": ["grr"]})
    lex = Lexicon({"fault": ["", "  ", "!!", "outage"]})
    assert hits("an outage", lex) == [("fault", "outage", "outage")]


# --- results shape ------------------------------------------------------------------


def test_matches_in_text_order_across_categories() -> None:
    text = "I'm leaving, the app keeps crashing!! Refund me or I go to a competitor."
    assert hits(text) == [
        ("leave_intent", "leaving", "leaving"),
        ("fault", "crash", "crashing"),
        ("compensation", "refund", "Refund"),
        ("competitor", "competitor", "competitor"),
    ]


def test_one_match_per_category_and_position_longest_wins() -> None:
    assert hits("אני רוצה החזר כספי") == [("compensation", "החזר כספי", "החזר כספי")]


def test_words_are_joined_by_single_spaces() -> None:
    assert hits("they  stopped\n\tworking") == [("fault", "stopped working", "stopped working")]


def test_mixed_scripts_and_emoji() -> None:
    text = "😡😡 שקרנים!!! the app crashed again 🤬 רוצה פיצוי 💸"
    assert hits(text) == [
        ("hostile", "שקרנים", "שקרנים"),
        ("fault", "crash", "crashed"),
        ("compensation", "פיצוי", "פיצוי"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, the delivery arrived on time",
        "תודה רבה, הכל הגיע בזמן",
        "שירות מעולה, ממליץ בחום",
        "Great service, see you next month",
    ],
)
def test_neutral_messages_have_no_matches(text: str) -> None:
    assert DEFAULT_LEXICON.find(text) == []


# --- robustness -----------------------------------------------------------------------


def test_empty_and_none() -> None:
    assert DEFAULT_LEXICON.find("") == []
    assert DEFAULT_LEXICON.find(None) == []
    assert DEFAULT_LEXICON.find("   \n\t ") == []


def test_very_long_text() -> None:
    chunk = "הראוטר לא עובד והתקלה חזרה, I want a refund! 😡 "
    text = chunk * (100_000 // len(chunk) + 1)
    assert len(text) >= 100_000
    found = DEFAULT_LEXICON.find(text)
    assert len(found) == 3 * text.count(chunk)


_ALPHABET = st.sampled_from(
    [
        *"abcXYZ 'ו\"-.,!", "תקלה", "לא", "not", " ", "ך", "😡", "ǅ", "½",
        "\u05b8", "\u05f4", "\u200f",  # qamats, gershayim, right-to-left mark
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_find_never_raises_and_cites_text(text: str) -> None:
    for m in DEFAULT_LEXICON.find(text):
        assert m.category in CATEGORIES
        assert all(word in text for word in m.words.split(" "))
