"""The report of a run: what it did (`ReportData`, read back from the database by `survey`),
as aligned text tables (`render`), JSON (`to_json`) or an offline page (`write_html`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lifecycle.simulation import charts, tables
from lifecycle.simulation.report_data import ReportData


@dataclass(frozen=True)
class Report(ReportData):
    """What a simulation run did. ``to_json(deterministic=True)`` leaves out the wall clock,
    so two runs with one seed compare equal."""

    def render(self) -> str:
        """The report as aligned text tables."""
        return tables.render(self)

    def html(self) -> str:
        """The page `write_html` writes, as text (the operator's console serves it)."""
        return charts.page(self)

    def write_html(self, directory: str | Path) -> Path:
        """A static page with inline SVG charts, for a browser to open offline."""
        return charts.write_html(self, Path(directory))


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
