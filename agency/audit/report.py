"""The officer's report on a log: the verification verdict first, then counts per partner, per
purpose and per day, every query and refusal (`listing`), every disclosure, and case references
that differ from another only by look-alike characters.

Text in these outputs came from partners and officers: the CLI makes it inert (`cli/display.py`)
and HTML is escaped here.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

QUERY_OPERATIONS = ("query.served", "query.made")
LISTING = ("time", "operation", "partner", "purpose", "case", "officer", "mode", "records", "hits", "status",
           "reason")
DISCLOSURES = ("time", "followup_id", "to", "fields", "approved_by", "case", "purpose")
# Letters that render like Latin ones (Cyrillic, Greek) and digits like letters: a case reference written
# with them is another string that an officer reads as the same reference.
_LOOKALIKE = {  # code point -> the Latin letter it renders like
    0x0430: "a", 0x0435: "e", 0x043e: "o", 0x0440: "p", 0x0441: "c", 0x0443: "y", 0x0445: "x", 0x043a: "k", 0x043c:
    "m", 0x0442: "t", 0x043d: "h", 0x0432: "b", 0x0456: "i", 0x0458: "j", 0x0455: "s", 0x0501: "d", 0x03bf: "o",
    0x03b1: "a", 0x03c1: "p", 0x03c4: "t", 0x03bd: "v", 0x03ba: "k", 0x03b9: "i", 0x0030: "o", 0x0031: "l", 0x007c:
    "l",
}


@dataclass
class Counts:
    queries_served: int = 0  # the partner queried this node
    elements_evaluated: int = 0  # match keys evaluated for the partner (it does not say how many records)
    queries_made: int = 0  # this node queried the partner
    records_compared: int = 0  # own records sent in those queries
    hits: int = 0  # own records that hit (queries made)
    refused: int = 0

    def add(self, body: dict[str, Any]) -> None:
        operation, outcome = body.get("operation"), body.get("outcome")
        if operation == "request.refused" or (operation == "query.made" and outcome != "ok"):
            self.refused += 1
        elif operation == "query.served":
            self.queries_served += 1
            self.elements_evaluated += int(body.get("client_elements", 0))
        elif operation == "query.made":
            self.queries_made += 1
            self.records_compared += int(body.get("client_records", 0))
            self.hits += int(body.get("hits", 0))


@dataclass
class Report:
    entries: int = 0
    first: str = ""
    last: str = ""
    by_partner: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    by_purpose: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    timeline: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))  # per UTC day
    operations: Counter[str] = field(default_factory=Counter)
    verdict: str = "NOT VERIFIED: no public key given"
    intact: bool = False
    listing: list[dict[str, Any]] = field(default_factory=list)  # one row per query and refusal (LISTING)
    disclosures: list[dict[str, Any]] = field(default_factory=list)  # follow-up fields released (DISCLOSURES)
    lookalikes: list[list[str]] = field(default_factory=list)  # case references an officer reads as one


def skeleton(text: str) -> str:
    """What a reader sees: compatibility forms folded, case folded, look-alikes and invisible characters mapped."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_LOOKALIKE)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def _listing_row(body: dict[str, Any]) -> dict[str, Any]:
    made = body.get("operation") == "query.made"
    return {"time": body.get("time", ""), "operation": body.get("operation", ""), "partner": body.get("partner", ""),
            "purpose": body.get("purpose", ""), "case": body.get("case", ""), "officer": body.get("operator", ""),
            "mode": body.get("mode", ""),
            "records": body.get("client_records" if made else "client_elements", ""),
            "hits": body.get("hits", "") if made else "", "status": body.get("status", ""),
            "reason": body.get("message", "") if body.get("outcome") != "ok" else ""}


def _disclosures(bodies: list[dict[str, Any]], approved: dict[str, str]) -> list[dict[str, Any]]:
    """Each release of follow-up fields to a partner, with the officer who approved it (by follow-up id)."""
    return [{"time": b.get("time", ""), "followup_id": b.get("followup_id", ""), "to": b.get("partner", ""),
             "fields": ", ".join(b.get("fields_released", [])),
             "approved_by": approved.get(str(b.get("followup_id")), ""),
             "case": b.get("case", ""), "purpose": b.get("purpose", "")}
            for b in bodies if b.get("operation") == "followup.disclosed"]


def _lookalikes(cases: set[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for case in sorted(cases):
        groups[skeleton(case)].append(case)
    return [group for group in groups.values() if len(group) > 1]


def parse_day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def build_report(bodies: Iterable[dict[str, Any]], *, start: dt.date | None = None, end: dt.date | None = None,
                 partner: str | None = None, case: str | None = None) -> Report:
    """Aggregate entry bodies; `start`/`end` are inclusive UTC days. Set `verdict` and `intact` after."""
    report = Report()
    kept: list[dict[str, Any]] = []
    cases: set[str] = set()
    approved: dict[str, str] = {}  # follow-up id -> deciding officer, whatever the filters
    for body in bodies:
        day = str(body.get("time", ""))[:10]
        if body.get("case"):
            cases.add(str(body["case"]))
        if body.get("operation") == "followup.approved" and body.get("phase") != "intent":
            approved[str(body.get("followup_id"))] = str(body.get("decided_by", ""))
        if (start and day < start.isoformat()) or (end and day > end.isoformat()):
            continue
        if (partner and body.get("partner") != partner) or (case and body.get("case") != case):
            continue
        kept.append(body)
        if body.get("phase") == "intent":  # its outcome entry says what happened
            continue
        report.entries += 1
        report.first = report.first or str(body.get("time"))
        report.last = str(body.get("time"))
        report.operations[str(body.get("operation"))] += 1
        if body.get("operation") in (*QUERY_OPERATIONS, "request.refused"):
            report.by_partner[str(body.get("partner", "unknown"))].add(body)
            report.by_purpose[str(body.get("purpose") or "(none given)")].add(body)
            report.timeline[day].add(body)
            report.listing.append(_listing_row(body))
    report.disclosures = _disclosures(kept, approved)
    report.lookalikes = _lookalikes(cases)
    return report


def _rows(group: dict[str, Counts]) -> list[dict[str, Any]]:
    return [{"key": key, **asdict(counts)} for key, counts in sorted(group.items())]


COLUMNS = ("queries_served", "elements_evaluated", "queries_made", "records_compared", "hits", "refused")


def to_json(report: Report) -> str:
    return json.dumps({"verification": {"intact": report.intact, "verdict": report.verdict},
                       "entries": report.entries, "first": report.first, "last": report.last,
                       "operations": dict(report.operations), "by_partner": _rows(report.by_partner),
                       "by_purpose": _rows(report.by_purpose), "timeline": _rows(report.timeline),
                       "listing": report.listing, "disclosures": report.disclosures,
                       "lookalike_cases": report.lookalikes}, indent=2, ensure_ascii=False)


def to_csv(report: Report, cell: Callable[[object], str]) -> str:
    """Sections one after the other, each with its header; `cell` neutralises what a spreadsheet would run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def row(*values: object) -> None:
        writer.writerow([cell(v) for v in values])

    row("verification", "INTACT" if report.intact else "NOT INTACT", report.verdict)
    row("section", "key", *COLUMNS)
    for section, group in (("partner", report.by_partner), ("purpose", report.by_purpose),
                           ("day", report.timeline)):
        for counts in _rows(group):
            row(section, counts["key"], *(counts[c] for c in COLUMNS))
    row("section", *LISTING)
    for entry in report.listing:
        row("entry", *(entry[c] for c in LISTING))
    row("section", *DISCLOSURES)
    for disclosure in report.disclosures:
        row("disclosure", *(disclosure[c] for c in DISCLOSURES))
    for similar in report.lookalikes:
        row("lookalike-cases", *similar)
    return out.getvalue()


def _svg_timeline(report: Report) -> str:
    """Bars per day: queries (served + made) and refused, drawn inline so the page works offline."""
    days = sorted(report.timeline)
    if not days:
        return "<p>No queries in this period.</p>"
    values = [(d, report.timeline[d].queries_served + report.timeline[d].queries_made,
               report.timeline[d].refused) for d in days]
    peak = max(max(q, r) for _, q, r in values) or 1
    width, height, bar, margin = max(320, 60 * len(days)), 220, 20, 25  # margin: room for the labels
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + margin + 60}" role="img" '
             'aria-label="queries and refusals per day">']
    for i, (day, queries, refused) in enumerate(values):
        x = 40 + i * 60
        for j, (value, colour) in enumerate(((queries, "#3b6ea5"), (refused, "#c0392b"))):
            h = round(height * value / peak)
            parts.append(f'<rect x="{x + j * bar}" y="{margin + height - h}" width="{bar - 2}" height="{h}" '
                         f'fill="{colour}"><title>{day}: {value}</title></rect>')
            parts.append(f'<text x="{x + j * bar + 2}" y="{margin + height - h - 4}" font-size="10">{value}</text>')
        parts.append(f'<text x="{x}" y="{margin + height + 18}" font-size="10">{html.escape(day)}</text>')
    legend = margin + height + 30
    parts.append(f'<rect x="40" y="{legend}" width="10" height="10" fill="#3b6ea5"/>'
                 f'<text x="55" y="{legend + 9}" font-size="11">queries</text>'
                 f'<rect x="120" y="{legend}" width="10" height="10" fill="#c0392b"/>'
                 f'<text x="135" y="{legend + 9}" font-size="11">refused</text></svg>')
    return "".join(parts)


def _html_table(title: str, group: dict[str, Counts]) -> str:
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in COLUMNS)
    body = "".join(
        f"<tr><td>{html.escape(row['key'])}</td>" + "".join(f"<td>{row[c]}</td>" for c in COLUMNS) + "</tr>"
        for row in _rows(group))
    return f"<h2>{html.escape(title)}</h2><table><tr><th></th>{head}</tr>{body}</table>"


def _html_rows(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


def to_html(report: Report, log_name: str) -> str:
    """One self-contained page: no scripts, no external files; the verdict first, red when not intact."""
    style = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}td:first-child{text-align:left}"
             ".bad{background:#c0392b;color:#fff;padding:1em;font-size:1.3em}.good{background:#e8f5e9;padding:1em}")
    verdict = (f"<p class='good'>Verification: {html.escape(report.verdict)}</p>" if report.intact else
               f"<p class='bad'><strong>NOT VERIFIED OR NOT INTACT — do not rely on this report.</strong><br>"
               f"{html.escape(report.verdict)}</p>")
    lookalikes = "".join(f"<li>{html.escape(' / '.join(similar))}</li>" for similar in report.lookalikes)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Audit report: "
            f"{html.escape(log_name)}</title><style>{style}</style></head><body>{verdict}"
            f"<h1>Audit report: {html.escape(log_name)}</h1>"
            f"<p>{report.entries} entries from {html.escape(report.first)} to {html.escape(report.last)}</p>"
            + (f"<h2>Case references that look alike</h2><ul>{lookalikes}</ul>" if lookalikes else "")
            + _html_table("Per partner", report.by_partner) + _html_table("Per purpose", report.by_purpose)
            + "<h2>Timeline (UTC days)</h2>" + _svg_timeline(report)
            + _html_table("Per day", report.timeline)
            + _html_rows("Queries and refusals", LISTING, report.listing)
            + _html_rows("Disclosures (follow-up fields released)", DISCLOSURES, report.disclosures)
            + "</body></html>")
