"""Business policy: every threshold, window and weight, with retail defaults.

The policy is a TOML file with one table per section below.  Any key left out
keeps its default; an unknown key, a wrong type or an out-of-range value fails
with a message naming ``[section].key``, because a mistyped threshold that
silently fell back to a default would page call centres on the wrong rules.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class PolicyError(ValueError):
    """The policy file is invalid; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class History:
    """How much activity history each customer's compact state keeps."""

    #: Purchases are counted in event-time buckets of this many days.
    bucket_days: int = 30
    #: Buckets kept: enough for the recent window plus the baseline.
    buckets_kept: int = 15
    #: Inter-purchase gaps kept for the customer's typical gap (median).
    gaps_kept: int = 12
    #: Complaints older than this no longer count.
    complaint_days: int = 365
    #: At most this many complaints are remembered per customer.
    complaints_kept: int = 30
    #: Events this far behind their partition's event-time clock are applied;
    #: older ones go to dead-letters as too late (their windows have passed).
    allowed_lateness_days: float = 7.0
    #: Events this far ahead of the wall clock (or of the partition's clock,
    #: when a replay runs ahead of the wall clock) go to dead-letters as from
    #: the future: one mistyped year must not move a partition's clock.
    max_future_hours: float = 48.0
    #: Event ids remembered per customer (all topics): an event whose id is
    #: among them is a duplicate (a producer's retry, a connector's re-send)
    #: and is dropped.
    event_ids_kept: int = 32


@dataclass(frozen=True, slots=True)
class FrequencyDrop:
    """Buying less often (or spending less) than the customer's own past."""

    #: Recent window, in buckets (the current, partial bucket included).
    recent_buckets: int = 3
    #: Baseline window, in buckets, immediately before the recent window.
    baseline_buckets: int = 12
    #: Enough history to judge: purchases in the baseline and its span.
    min_baseline_purchases: int = 4
    min_baseline_days: int = 90
    #: Fires when recent count (or spend) is at most this share of expected...
    max_ratio: float = 0.5
    #: ...and the count is that low with at most this Poisson probability,
    #: so a customer who buys twice a year is not "dropping" after a quiet month.
    max_probability: float = 0.05
    #: Spend alone is judged only when at least this many purchases were
    #: expected in the recent window (a few baskets vary too much).
    min_expected_for_spend: float = 5.0


@dataclass(frozen=True, slots=True)
class Overdue:
    """The next purchase is late compared with the customer's usual gap."""

    #: Late = days since last purchase > multiple x typical gap.
    multiple: float = 3.0
    #: ...and past this multiple of the longest of the customer's recent gaps.
    longest_gap_multiple: float = 1.25
    #: Never judge anyone late before this many days.
    min_days: float = 21.0
    #: Gaps needed before the customer's own typical gap is trusted...
    min_gaps: int = 2
    #: ...otherwise (one-time buyers) this population typical gap is used.
    population_gap_days: float = 45.0
    #: Past this many days without a purchase the customer counts as lapsed
    #: and gets a win-back offer rather than a friendly reach-out.
    lapsed_days: float = 120.0


@dataclass(frozen=True, slots=True)
class Complaints:
    """Complaining more often or more severely than before."""

    window_days: int = 30
    min_count: int = 2
    #: Severity-weighted volume (sum of severities 1-5) that trips the signal.
    min_weighted: float = 6.0
    #: The window volume must also exceed this multiple of the customer's own
    #: usual volume per window (measured over ``[history].complaint_days``).
    baseline_multiple: float = 2.0
    #: One complaint this severe or worse trips the signal on its own.
    critical_severity: int = 5


@dataclass(frozen=True, slots=True)
class Scoring:
    """Risk score 0-100 from the active signals (noisy-OR of weights)."""

    weight_frequency_drop: float = 45.0
    weight_overdue: float = 50.0
    weight_complaints: float = 45.0
    weight_unresponsive: float = 35.0
    weight_technical_faults: float = 35.0
    weight_competitor_probing: float = 60.0
    weight_compensation_escalation: float = 40.0
    weight_hostile_tone: float = 40.0
    weight_neglected: float = 60.0
    #: Severity bands by risk.
    medium_at: float = 35.0
    high_at: float = 60.0
    critical_at: float = 80.0
    #: Spend over the last year (365 days of event time) at which a customer
    #: counts as high value and is routed to the call centre whatever the risk.
    high_value_spend: float = 5000.0


@dataclass(frozen=True, slots=True)
class Alerting:
    """When an alert is raised, re-raised and closed (no alert storms)."""

    #: An episode opens when the risk reaches this...
    open_at: float = 30.0
    #: ...and closes when it falls below this (hysteresis).
    close_below: float = 15.0
    #: Within an episode, re-alert when the risk rises by this much or a new
    #: signal joins; otherwise stay quiet.
    escalate_step: float = 15.0
    #: A signal alerted on counts as "new" again only after this many days.
    cooldown_days: float = 14.0


@dataclass(frozen=True, slots=True)
class Unresponsive:
    """The customer ignores the business: outreach unanswered, unopened, bounced."""

    #: Window over which outbound contact days are counted.
    window_days: int = 60
    #: Consecutive outreach *days* without any response (a burst of calls on
    #: one day is one day: our own persistence is not the customer's silence).
    min_streak_days: int = 3
    #: Fires also when the response rate in the window falls to this share of
    #: the customer's own earlier response rate (with enough outreach to judge).
    max_rate_ratio: float = 0.4
    min_outreach_days: int = 4


@dataclass(frozen=True, slots=True)
class TechnicalFaults:
    """Repeated technical faults or service failures (complaints and contacts)."""

    window_days: int = 60
    min_count: int = 2


@dataclass(frozen=True, slots=True)
class CompetitorProbing:
    """Mentions of competitors, their prices or offers, requests to match them."""

    window_days: int = 90
    min_count: int = 1


@dataclass(frozen=True, slots=True)
class CompensationEscalation:
    """Compensation demanded more often or for more money."""

    window_days: int = 90
    min_count: int = 2
    #: Or a single demand at least this large.
    large_amount: float = 500.0


@dataclass(frozen=True, slots=True)
class HostileTone:
    """Resentful, confrontational language toward staff."""

    window_days: int = 60
    min_count: int = 1


@dataclass(frozen=True, slots=True)
class Neglected:
    """A valuable customer the business has not contacted in a long time."""

    days: float = 120.0
    #: Spend over the last year that makes a customer valuable enough.
    min_spend_last_year: float = 2500.0


@dataclass(frozen=True, slots=True)
class Text:
    """Lexicon extensions for the text signals, Hebrew or English."""

    #: Competitor brand names (matched with Hebrew prefixes too).
    competitors: tuple[str, ...] = ()
    competitor_terms: tuple[str, ...] = ()
    compensation_terms: tuple[str, ...] = ()
    hostile_terms: tuple[str, ...] = ()
    fault_terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Feedback:
    """What outcomes reported on the feedback topic do to alerting."""

    #: After "contacted": no re-alert for this many days (the episode stays open).
    contacted_quiet_days: float = 14.0
    #: After "retained" or "false_alarm": episode closed, quiet this long.
    resolved_quiet_days: float = 45.0


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
    scoring: Scoring = field(default_factory=Scoring)
    alerting: Alerting = field(default_factory=Alerting)
    text: Text = field(default_factory=Text)
    feedback: Feedback = field(default_factory=Feedback)


_DEFAULT = Policy()
_POSITIVE_EXCEPT = {"max_probability", "max_ratio", "max_rate_ratio"}


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(
                isinstance(v, str) and v.strip() for v in value):
            raise PolicyError(f"{where}: expected a list of non-empty strings, got {value!r}")
        return tuple(value)
    if isinstance(default, bool) or isinstance(value, bool):
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
    elif name.startswith("weight_"):
        if not 0 <= value <= 100:
            raise PolicyError(f"{where}: expected a weight 0..100, got {value!r}")
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


def policy_toml(policy: Policy) -> str:
    """The policy as a TOML document (every key, so it can be edited and reloaded)."""
    lines: list[str] = []
    for section in fields(policy):
        values = getattr(policy, section.name)
        lines.append(f"[{section.name}]")
        for f in fields(values):
            v = getattr(values, f.name)
            text = json.dumps(list(v), ensure_ascii=False) if isinstance(v, tuple) else repr(v)
            lines.append(f"{f.name} = {text}")
        lines.append("")
    return "\n".join(lines)
