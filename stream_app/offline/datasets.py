"""Named data sets for replay and evaluation: ready-made inputs with their mapping.

* ``cdnow``: the CDNOW transaction log (Fader, Hardie and Lee): 69,659
  purchases of compact discs by the 23,570 customers who first bought in the
  first quarter of 1997, followed to the end of June 1998.  It ships inside
  the ``lifetimes`` wheel from PyPI (``pip install 'churnwatch[eval]'``), so
  nothing is downloaded at run time.  The file is located through the
  package's installed-file list, without importing ``lifetimes`` (whose import
  breaks with current numpy and pandas).  Purchases only: the contact and
  complaint signals stay silent on it, as they should.
* ``synthetic``: the seeded population of :mod:`stream_app.offline.synthetic`, written
  as JSON Lines files in our own schema (so the same file path is exercised).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .mapping import Mapping, MappingError, Source, to_jsonl
from .synthetic import generate

#: The CDNOW split used by default: the classic 39-week calibration period
#: (1997-01-01 to 1997-09-30) and a 180-day horizon, well inside the data's end.
CDNOW_CUTOFF = datetime(1997, 9, 30, 23, 59, 59, tzinfo=UTC)
CDNOW_HORIZON_DAYS = 180.0


@dataclass
class Dataset:
    name: str
    sources: list[Source]
    mapping: Mapping = field(default_factory=Mapping)
    cutoff: datetime | None = None
    horizon_days: float | None = None
    note: str = ""


def cdnow_file() -> Path:
    """CDNOW_master.txt inside the installed ``lifetimes`` distribution."""
    try:
        files = importlib.metadata.files("lifetimes") or []
    except importlib.metadata.PackageNotFoundError:
        raise MappingError("the cdnow data set ships in the lifetimes package: "
                           "pip install 'churnwatch[eval]'") from None
    for f in files:
        if f.name == "CDNOW_master.txt":
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise MappingError("the installed lifetimes package has no datasets/CDNOW_master.txt; "
                       "reinstall it: pip install --force-reinstall 'lifetimes==0.11.3'")


def cdnow() -> Dataset:
    return Dataset(
        "cdnow", [Source("purchases", cdnow_file())],
        Mapping(columns={"ts": "date", "amount": "dollar_value"}, date_format="%Y%m%d"),
        cutoff=CDNOW_CUTOFF, horizon_days=CDNOW_HORIZON_DAYS,
        note="CDNOW transaction log (lifetimes package): purchases only")


def synthetic(directory: Path, customers: int = 2000, days: int = 540,
              seed: int = 7) -> Dataset:
    """The generator's population as files, with a split inside its drift period.

    The generator makes every customer's first 60% ordinary and puts drift and
    departures after it; the cutoff at 78% of the span leaves some churners
    already gone, some on their way out, and a 90-day horizon that still ends
    inside the data.
    """
    pop = generate(customers=customers, days=days, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    sources = []
    for kind in ("purchases", "contacts", "complaints"):
        path = directory / f"{kind}.jsonl"
        to_jsonl((e.value for e in pop.events if e.topic == kind), path)
        sources.append(Source(kind, path))
    start = datetime.fromtimestamp(pop.start, UTC)
    return Dataset(
        "synthetic", sources, Mapping(),
        cutoff=start + timedelta(days=round(days * 0.78)), horizon_days=90.0,
        note=f"synthetic population: {customers} customers, {days} days, seed {seed}")


NAMES = ("cdnow", "synthetic")
