"""What an ingest run reports: one `Result` per article or failed source, and the
`Report` of the whole run (counts, chunks written, what recovery did, skipped files).

A result's `status` is one of `STATUSES`; a failed one says why in one line (`reason`),
never with a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("added", "updated", "unchanged", "failed")


@dataclass
class Result:
    source: str
    status: str  # one of STATUSES
    article_id: str | None = None
    title: str = ""
    chunks: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.status == "failed":
            return f"failed     {self.source}: {self.reason}"
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.status:<10} {self.article_id}  {self.title[:70]}{extra}"


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recovered: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def chunks_written(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("added", "updated"))

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES)
        lines = [f"{counts} ({self.chunks_written} chunks written, {self.seconds:.1f} s)"]
        if self.recovered:
            lines.append(f"recovered {self.recovered} article(s) left half-written by an "
                         "interrupted run")
        lines += [f"  {r.source}: {r.reason}" for r in self.failed]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) in folders:")
            lines += [f"  {s}" for s in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def unexpected(exc: Exception) -> str:
    """A failed result's reason for an error nobody planned for: its type and first words."""
    detail = " ".join(str(exc).split())[:120]
    return f"unexpected error ({type(exc).__name__}{': ' + detail if detail else ''})"
