"""Event-time strings for property tests: RFC 3339 ones, and ones just outside it.

The near misses are the forms a producer really sends by mistake (ISO 8601's
basic and week forms, a space for the 'T', no seconds, "+0200", a leap second,
Feb 29 of a common year) and single-character edits of valid strings, which
reach every position of the pattern.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import strategies as st


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """A timestamp the contract accepts, in any of its spellings."""
    dt = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)))
    text = dt.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt")) + dt.strftime("%H:%M:%S")
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=1, max_size=12))
    minutes = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1) | st.just(0))
    if minutes == 0 and draw(st.booleans()):
        return text + draw(st.sampled_from("Zz"))
    sign = "-" if minutes < 0 or (minutes == 0 and draw(st.booleans())) else "+"
    return text + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iso_variants(dt: datetime) -> list[str]:
    return [
        dt.strftime("%Y%m%dT%H%M%SZ"),                     # basic
        dt.strftime("%G-W%V-%uT%H:%MZ"),                   # week date
        dt.strftime("%Y-%jT%H:%M:%SZ"),                    # ordinal date
        dt.strftime("%Y-%m-%d %H:%M:%SZ"),                 # space for the 'T'
        dt.strftime("%Y-%m-%dT%H:%MZ"),                    # no seconds
        dt.strftime("%Y-%m-%dT%HZ"),
        dt.strftime("%Y-%m-%dT%H:%M:%S+0200"),             # offset without its colon
        dt.strftime("%Y-%m-%dT%H:%M:%S+02"),
        dt.strftime("%Y-%m-%dT%H:%M:%S+02:00:30"),         # offset with seconds
        dt.strftime("%Y-%m-%dT%H:%M:%S+02:60"),
        dt.strftime("%Y-%m-%dT%H:%M:%S+24:00"),
        dt.strftime("%Y-%m-%dT%H:%M:%S,5Z"),               # decimal comma
        dt.strftime("%Y-%m-%dT%H:%M:%S.Z"),                # empty fraction
        dt.strftime("%Y-%m-%dT%H:%M:%S"),                  # no offset at all
        dt.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        dt.strftime("%Y-%m-%d"),
        dt.strftime("%Y-%m-%dT23:59:60Z"),                 # leap second
        dt.strftime("%Y-%m-%dT24:00:00Z"),
        dt.strftime("%Y-02-29T%H:%M:%SZ"),                 # a leap day, or not
        dt.strftime("%Y-%m-31T%H:%M:%SZ"),
        dt.strftime("%Y-%m-%dT%H:%M:%SZ\n"),
        dt.strftime(" %Y-%m-%dT%H:%M:%SZ"),
        dt.strftime("%Y-%m-%dT%H:%M:%SZZ"),
        dt.strftime("+%Y-%m-%dT%H:%M:%SZ"),
        dt.strftime("%Y-%m-%dT%H:%M:%S.5+02:00Z"),
        dt.strftime("%Y-%m-%dT%H:%M:%S.1.2Z"),
        dt.strftime("%Y-%m-%dT%H:%M:%S.1a+02:00"),
        dt.strftime("%Y-%m-%dT%H:%M:%S.") + "1" * 60 + "Z",
        dt.strftime("%Y-%m-%dT%H:%M:%S-00:00"),
        dt.isoformat(),
    ]


_EDIT_CHARS = "0123456789-:+.,TtZzW \n\u0660\u0662\uff12/"


@st.composite
def near_rfc3339(draw: st.DrawFn) -> str:
    """A timestamp just outside (or, by chance, still inside) the contract."""
    if draw(st.booleans()):
        dt = draw(st.datetimes(min_value=datetime(1985, 1, 1),
                               max_value=datetime(2105, 12, 31)))
        return draw(st.sampled_from(_iso_variants(dt)))
    text = draw(rfc3339())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        c = draw(st.sampled_from(_EDIT_CHARS))
        if edit == "insert":
            text = text[:i] + c + text[i:]
        elif edit == "delete":
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + c + text[i + 1:]
    return text


def _boundary(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"


#: The edges of the year range, read in the offset's local time.
BOUNDARIES = [_boundary(datetime(1990, 1, 1) + timedelta(seconds=s)) for s in (-1, 0, 1)] + [
    _boundary(datetime(2100, 1, 1) + timedelta(seconds=s)) for s in (-1, 0, 1)]


def timestamps() -> st.SearchStrategy[str]:
    return st.one_of(rfc3339(), near_rfc3339(), st.sampled_from(BOUNDARIES),
                     st.text(max_size=30))
