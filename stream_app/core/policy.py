"""Business policy: every threshold, window and odds multiplier, with retail defaults.

The policy is a TOML file with one table per section below.  Any key left out
keeps its default; an unknown key, a wrong type or an out-of-range value fails
with a message naming ``[section].key``, because a mistyped threshold that
silently fell back to a default would page call centres on the wrong rules.
"""

from __future__ import annotations

import json
import textwrap
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .model import ParetoNBD


class PolicyError(ValueError):
    """The policy file is invalid; the message names the offending key."""


_T = TypeVar("_T")


def doc(default: _T, text: str) -> _T:
    """A policy key's default and its documentation, kept in the field's metadata.

    One place for both: ``churnwatch policy defaults`` prints the text as a
    TOML comment above the key, so the file people edit says what the code
    says.
    """
    return field(default=default, metadata={"doc": " ".join(text.split())})


@dataclass(frozen=True, slots=True)
class History:
    """How much activity history each customer's compact state keeps."""

    bucket_days: int = doc(30, "Purchases are counted in event-time buckets of this many days.")
    buckets_kept: int = doc(15, "Buckets kept: enough for the recent window plus the baseline.")
    gaps_kept: int = doc(
        12, "Inter-purchase gaps kept for the customer's typical gap (median).")
    complaint_days: int = doc(365, "Complaints older than this many days no longer count.")
    complaints_kept: int = doc(30, "At most this many complaints are remembered per customer.")
    allowed_lateness_days: float = doc(7.0, """
        Events this many days behind their partition's event-time clock are applied;
        older ones go to dead-letters as too late (their windows have passed).""")
    max_future_hours: float = doc(48.0, """
        Events this many hours ahead of the wall clock (or of the partition's clock,
        when a replay runs ahead of the wall clock) go to dead-letters as from the
        future: one mistyped year must not move a partition's clock.""")
    event_ids_kept: int = doc(32, """
        Event ids remembered per customer, across its topics: an event sent again
        with one of them (a producer's retry, a connector's re-send) is dropped.""")


@dataclass(frozen=True, slots=True)
class FrequencyDrop:
    """Buying less often (or spending less) than the customer's own past."""

    recent_buckets: int = doc(3, """
        Recent window, in buckets (the current, partial bucket included).""")
    baseline_buckets: int = doc(12, """
        Baseline window, in buckets, immediately before the recent window.""")
    min_baseline_purchases: int = doc(4, """
        Enough history to judge: at least this many purchases in the baseline...""")
    min_baseline_days: int = doc(90, "...over a baseline at least this many days long.")
    max_ratio: float = doc(0.5, """
        Fires when the recent count (or spend) is at most this share of the
        expected...""")
    max_probability: float = doc(0.05, """
        ...and the count is that low with at most this Poisson probability, so a
        customer who buys twice a year is not "dropping" after a quiet month.""")
    min_expected_for_spend: float = doc(5.0, """
        Spend alone is judged only when at least this many purchases were expected
        in the recent window (a few baskets vary too much).""")


@dataclass(frozen=True, slots=True)
class Overdue:
    """The next purchase is late: a silence the purchase model finds unusual."""

    max_silence_probability: float = doc(0.1, """
        Late = a silence since the last purchase that a customer still buying at
        the rate shown so far would go through at most this often (0.1: 1 time
        in 10), judged by the purchase model ([model]).""")
    prior_purchases: float = doc(0.5, """
        When judging a silence, the population's purchase rate counts as at most
        this many purchases of evidence (its shape [model].r, capped here, its
        mean rate kept): a silence is judged by the customer's own rhythm, and a
        population fitted as buying weekly must not make a twice-a-year buyer's
        first long silence look unusual.""")
    min_days: float = doc(21.0, "Never judge anyone late before this many days.")
    lapsed_days: float = doc(120.0, """
        Past this many days without a purchase the customer counts as lapsed and
        gets a win-back offer rather than a friendly reach-out.""")


@dataclass(frozen=True, slots=True)
class Complaints:
    """Complaining more often or more severely than before."""

    window_days: int = doc(30, "Complaints in this many days are judged together.")
    min_count: int = doc(2, "At least this many complaints in the window...")
    min_weighted: float = doc(6.0, """
        ...with at least this severity-weighted volume (sum of severities 1-5).""")
    baseline_multiple: float = doc(2.0, """
        The window's volume must also exceed this multiple of the customer's own
        usual volume per window (measured over [history].complaint_days).""")
    critical_severity: int = doc(5, """
        One complaint this severe or worse trips the signal on its own.""")


def _odds(signal: str, default: float) -> float:
    return doc(default, f"""
        Odds multiplier of {signal} on the risk at full strength (1: no effect;
        a signal at half strength multiplies by its square root).""")


@dataclass(frozen=True, slots=True)
class Model:
    """The purchase model behind the risk (Pareto/NBD), learnt from the stream.

    The risk is the probability that the customer buys nothing in the next
    ``horizon_days``, from the customer's purchase days so far and four
    population numbers fitted per partition, moved by the customer's mean
    basket against the partition's typical one, and by the other signals as
    odds multipliers ([scoring]).
    """

    horizon_days: float = doc(90.0, """
        The risk is the probability of no purchase in this many days.""")
    fit: bool = doc(True, """
        Fit the population numbers below (and the typical basket) to each
        partition's customers as events arrive (every refit_days, kept in the
        state table); off, the numbers below are used as they are, until a
        partition has min_customers buyers and while fit is off.""")
    refit_days: float = doc(30.0, """
        Days of event time between two fits of a partition's population numbers
        (warm-started from the last fit, stored in the state table).""")
    min_customers: int = doc(200, """
        Buyers a partition needs before its population numbers are fitted; until
        then the numbers below are used.""")
    prior_customers: float = doc(2.0, """
        A fit counts the numbers below as this many customers' worth of evidence:
        it keeps the fit of a small or unusual partition finite and quick, and
        weighs next to nothing in a large one.""")
    r: float = doc(0.5, "Purchase-rate shape (customers differ more the smaller it is)...")
    alpha: float = doc(30.0, """
        ...and scale in days: a living customer buys about r / alpha times a day.""")
    s: float = doc(0.5, "Dropout-rate shape...")
    beta: float = doc(182.5, """
        ...and scale in days: a customer drops out at about s / beta a day.""")
    basket_elasticity: float = doc(0.2, """
        The customer's mean basket moves the risk: its odds are multiplied by
        (mean basket / typical_basket) ** -basket_elasticity, so a customer who
        spends twice the typical basket per purchase has odds lower by a factor
        of 2 ** basket_elasticity (0: the basket does not count). Bigger baskets
        go with more loyal buyers in retail logs (measured on a split apart from
        the one the README reports).""")
    typical_basket: float = doc(0.0, """
        The typical basket (the geometric mean of the customers' mean baskets, in
        the data's currency) the basket is compared with; fitted with the numbers
        above when fit is on. 0: not known, the basket does not count.""")
    no_purchase_risk: float = doc(0.5, """
        The probability used for a customer who has never bought (only contacts or
        complaints so far).""")


_PARAMS: dict[int, tuple[Model, ParetoNBD]] = {}


def model_params(m: Model) -> ParetoNBD:
    """The population numbers a policy's ``[model]`` holds (fitted or default).

    Built once per ``[model]`` object and found again by identity: they are
    asked for several times in every assessment, and hashing the frozen
    section's fields each time cost more than the model's own arithmetic.
    """
    hit = _PARAMS.get(id(m))
    if hit is not None and hit[0] is m:
        return hit[1]
    if len(_PARAMS) > 256:  # old fits: let them go
        _PARAMS.clear()
    params = ParetoNBD(m.r, m.alpha, m.s, m.beta)
    _PARAMS[id(m)] = (m, params)
    return params


@dataclass(frozen=True, slots=True)
class Scoring:
    """The risk's odds multipliers, severity bands and routing."""

    odds_frequency_drop: float = _odds(
        "FREQUENCY_DROP (the purchase model already counts the slower buying)", 1.0)
    odds_overdue: float = _odds("OVERDUE (the model already counts the silence)", 1.0)
    odds_complaints: float = _odds("COMPLAINTS", 2.5)
    odds_unresponsive: float = _odds("UNRESPONSIVE", 1.8)
    odds_technical_faults: float = _odds("TECHNICAL_FAULTS", 1.8)
    odds_competitor_probing: float = _odds("COMPETITOR_PROBING", 3.0)
    odds_compensation_escalation: float = _odds("COMPENSATION_ESCALATION", 2.0)
    odds_hostile_tone: float = _odds("HOSTILE_TONE", 2.0)
    odds_neglected: float = _odds("NEGLECTED", 1.5)
    medium_at: float = doc(45.0, "Risk (percent) from which an alert's severity is medium...")
    high_at: float = doc(70.0, "...high...")
    critical_at: float = doc(90.0, "...and critical.")
    high_value_spend: float = doc(5000.0, """
        Spend over the last year (365 days of event time) at which a customer
        counts as high value.""")
    call_value_at_risk: float = doc(300.0, """
        Value at risk (the risk times the spend over the last year) from which an
        alert goes to the call centre rather than to marketing automation; a
        high-value customer goes there whatever the risk.""")


@dataclass(frozen=True, slots=True)
class Alerting:
    """When an alert is raised, re-raised and closed (no alert storms)."""

    open_at: float = doc(45.0, """
        An episode opens when the risk (percent) reaches this and a signal gives a
        reason; `churnwatch evaluate --budget N` suggests the value for a team that
        can act on N alerts per 1,000 customers a month...""")
    opens_alone: tuple[str, ...] = doc((
        "COMPLAINTS", "TECHNICAL_FAULTS", "COMPENSATION_ESCALATION", "COMPETITOR_PROBING",
        "HOSTILE_TONE", "NEGLECTED"), """
        ...or when one of these signals fires, whatever the risk: each calls for an
        action of its own (act on the complaint, notify of the fault, answer the
        competitor's offer, listen, show appreciation), even for a customer who
        still buys and whose chance of leaving is low...""")
    close_below: float = doc(30.0, "...and closes when it falls below this (hysteresis).")
    escalate_step: float = doc(20.0, """
        Within an episode, re-alert when the risk rises by this much or a new
        signal joins; otherwise stay quiet.""")
    cooldown_days: float = doc(14.0, """
        A signal alerted on counts as "new" again only after this many days.""")


@dataclass(frozen=True, slots=True)
class Unresponsive:
    """The customer ignores the business: outreach unanswered, unopened, bounced."""

    window_days: int = doc(60, "Window over which outbound contact days are counted.")
    min_streak_days: int = doc(3, """
        Consecutive outreach *days* without any response (a burst of calls on one
        day is one day: our own persistence is not the customer's silence).""")
    max_rate_ratio: float = doc(0.4, """
        Fires also when the response rate in the window falls to this share of the
        customer's own earlier response rate...""")
    min_outreach_days: int = doc(4, """
        ...with at least this many outreach days in the window and before it.""")


@dataclass(frozen=True, slots=True)
class TechnicalFaults:
    """Repeated technical faults or service failures (complaints and contacts)."""

    window_days: int = doc(60, "Faults reported in this many days are counted...")
    min_count: int = doc(2, "...and this many trip the signal.")


@dataclass(frozen=True, slots=True)
class CompetitorProbing:
    """Mentions of competitors, their prices or offers, requests to match them."""

    window_days: int = doc(90, "Mentions in this many days are counted...")
    min_count: int = doc(1, "...and this many trip the signal.")


@dataclass(frozen=True, slots=True)
class CompensationEscalation:
    """Compensation demanded more often or for more money."""

    window_days: int = doc(90, "Demands in this many days are counted...")
    min_count: int = doc(2, "...and this many trip the signal...")
    large_amount: float = doc(500.0, "...or a single demand at least this large.")


@dataclass(frozen=True, slots=True)
class HostileTone:
    """Resentful, confrontational language toward staff."""

    window_days: int = doc(60, "Hostile messages in this many days are counted...")
    min_count: int = doc(1, "...and this many trip the signal.")


@dataclass(frozen=True, slots=True)
class Neglected:
    """A valuable customer the business has not contacted in a long time."""

    days: float = doc(120.0, """
        Days since our last outbound contact (or since we first saw the customer)
        that count as neglect...""")
    min_spend_last_year: float = doc(2500.0, """
        ...for a customer whose spend over the last year is at least this.""")


@dataclass(frozen=True, slots=True)
class Text:
    """Lexicon extensions for the text signals, Hebrew or English."""

    competitors: tuple[str, ...] = doc((), """
        Competitor brand names (matched with Hebrew prefixes too).""")
    competitor_terms: tuple[str, ...] = doc((), """
        Extra words or phrases that mean probing a competitor's offer.""")
    compensation_terms: tuple[str, ...] = doc((), """
        Extra words or phrases that mean demanding compensation.""")
    hostile_terms: tuple[str, ...] = doc((), "Extra words or phrases that mean hostility.")
    fault_terms: tuple[str, ...] = doc((), """
        Extra words or phrases that mean a technical fault or service failure.""")


@dataclass(frozen=True, slots=True)
class Feedback:
    """What outcomes reported on the feedback topic do to alerting."""

    contacted_quiet_days: float = doc(14.0, """
        After "contacted": no re-alert for this many days (the episode stays open).""")
    resolved_quiet_days: float = doc(45.0, """
        After "retained" or "false_alarm": the episode is closed and stays quiet this
        many days.""")


@dataclass(frozen=True, slots=True)
class Policy:
    history: History = field(default_factory=History)
    frequency_drop: FrequencyDrop = field(default_factory=FrequencyDrop)
    overdue: Overdue = field(default_factory=Overdue)
    complaints: Complaints = field(default_factory=Complaints)
    unresponsive: Unresponsive = field(default_factory=Unresponsive)
    technical_faults: TechnicalFaults = field(default_factory=TechnicalFaults)
    competitor_probing: CompetitorProbing = field(default_factory=CompetitorProbing)
    compensation_escalation: CompensationEscalation = field(
        default_factory=CompensationEscalation)
    hostile_tone: HostileTone = field(default_factory=HostileTone)
    neglected: Neglected = field(default_factory=Neglected)
    model: Model = field(default_factory=Model)
    scoring: Scoring = field(default_factory=Scoring)
    alerting: Alerting = field(default_factory=Alerting)
    text: Text = field(default_factory=Text)
    feedback: Feedback = field(default_factory=Feedback)


_DEFAULT = Policy()
_POSITIVE_EXCEPT = {"max_probability", "max_ratio", "max_rate_ratio",
                    "max_silence_probability", "no_purchase_risk"}
#: Keys where 0 means "no effect" or "not known".
_NON_NEGATIVE = {"basket_elasticity", "typical_basket"}


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(
                isinstance(v, str) and v.strip() for v in value):
            raise PolicyError(f"{where}: expected a list of non-empty strings, got {value!r}")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PolicyError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool):
        raise PolicyError(f"{where}: expected a number, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(value, int):
            raise PolicyError(f"{where}: expected a whole number, got {value!r}")
    elif isinstance(default, float):
        if not isinstance(value, int | float):
            raise PolicyError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    if name in _POSITIVE_EXCEPT:
        if not 0 < value <= 1:
            raise PolicyError(f"{where}: expected a value in (0, 1], got {value!r}")
    elif name.startswith("odds_"):
        if not 0 < value <= 100:
            raise PolicyError(f"{where}: expected an odds multiplier above 0, at most 100, "
                              f"got {value!r}")
    elif name in _NON_NEGATIVE:
        if value < 0:
            raise PolicyError(f"{where}: expected a value of 0 or more, got {value!r}")
    elif value <= 0:
        raise PolicyError(f"{where}: expected a value above 0, got {value!r}")
    return value


def policy_from_mapping(data: dict[str, Any], source: str = "policy") -> Policy:
    """Validate a parsed policy document; every error names ``[section].key``."""
    sections: dict[str, Any] = {}
    known = {f.name: f for f in fields(Policy)}
    for section, body in data.items():
        if section not in known:
            raise PolicyError(
                f"{source}: unknown section [{section}]; known: {', '.join(sorted(known))}"
            )
        if not isinstance(body, dict):
            raise PolicyError(f"{source}: [{section}] must be a table of settings")
        defaults = getattr(_DEFAULT, section)
        cls = type(defaults)
        keys = {f.name for f in fields(defaults)}
        values: dict[str, Any] = {}
        for key, value in body.items():
            where = f"{source}: [{section}].{key}"
            if key not in keys:
                raise PolicyError(f"{where} is not a setting; known: {', '.join(sorted(keys))}")
            values[key] = _check_value(where, key, value, getattr(defaults, key))
        sections[section] = cls(**values)
    policy = Policy(**sections)
    _check_consistency(policy, source)
    return policy


def _check_consistency(p: Policy, source: str) -> None:
    h, fd, a, s = p.history, p.frequency_drop, p.alerting, p.scoring
    # Every signal has an odds key (a test holds them to the signals).
    codes = {f.name[len("odds_"):].upper() for f in fields(s) if f.name.startswith("odds_")}
    unknown = sorted(set(a.opens_alone) - codes)
    if unknown:
        raise PolicyError(f"{source}: [alerting].opens_alone: unknown signal "
                          f"{', '.join(unknown)}; known: {', '.join(sorted(codes))}")
    if fd.recent_buckets + fd.baseline_buckets > h.buckets_kept:
        raise PolicyError(
            f"{source}: [history].buckets_kept ({h.buckets_kept}) must cover "
            f"[frequency_drop].recent_buckets + baseline_buckets "
            f"({fd.recent_buckets + fd.baseline_buckets})"
        )
    if a.close_below >= a.open_at:
        raise PolicyError(f"{source}: [alerting].close_below must be below open_at")
    if not s.medium_at < s.high_at < s.critical_at <= 100:
        raise PolicyError(
            f"{source}: [scoring] bands must rise: medium_at < high_at < critical_at <= 100"
        )


def load_policy(path: str | Path | None) -> Policy:
    """The default policy, or the file at ``path`` validated over it."""
    if path is None:
        return Policy()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such policy file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{p}: not valid TOML: {exc}") from None
    return policy_from_mapping(data, str(p))


def key_doc(section: Any, name: str) -> str:
    """A policy key's documentation (empty when it has none)."""
    return str(next(f.metadata.get("doc", "") for f in fields(section) if f.name == name))


def policy_toml(policy: Policy, documented: bool = False) -> str:
    """The policy as a TOML document (every key, so it can be edited and reloaded).

    ``documented`` puts each section's and key's documentation above it as
    comments, for a file to start from.
    """
    def comment(text: str) -> list[str]:
        return textwrap.wrap(text, 78, initial_indent="# ", subsequent_indent="# ")

    lines: list[str] = []
    for section in fields(policy):
        values = getattr(policy, section.name)
        if documented:
            lines.extend(comment(str(type(values).__doc__).strip()))
        lines.append(f"[{section.name}]")
        for f in fields(values):
            v = getattr(values, f.name)
            text = (json.dumps(list(v), ensure_ascii=False) if isinstance(v, tuple)
                    else json.dumps(v) if isinstance(v, bool) else repr(v))
            if documented and f.metadata.get("doc"):
                lines.extend(comment(f.metadata["doc"]))
            lines.append(f"{f.name} = {text}")
        lines.append("")
    return "\n".join(lines)
