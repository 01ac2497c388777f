"""The officer's summary of a verified log: per partner, per purpose, and a timeline."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

QUERY_OPERATIONS = ("query.served", "query.made")


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


def parse_day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def build_report(bodies: Iterable[dict[str, Any]], *, start: dt.date | None = None, end: dt.date | None = None,
                 partner: str | None = None) -> Report:
    """Aggregate entry bodies; `start`/`end` are inclusive UTC days."""
    report = Report()
    for body in bodies:
        day = str(body.get("time", ""))[:10]
        if (start and day < start.isoformat()) or (end and day > end.isoformat()):
            continue
        if partner and body.get("partner") != partner:
            continue
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
    return report


def _rows(group: dict[str, Counts]) -> list[dict[str, Any]]:
    return [{"key": key, **asdict(counts)} for key, counts in sorted(group.items())]


COLUMNS = ("queries_served", "elements_evaluated", "queries_made", "records_compared", "hits", "refused")


def to_json(report: Report) -> str:
    return json.dumps({"entries": report.entries, "first": report.first, "last": report.last,
                       "operations": dict(report.operations), "by_partner": _rows(report.by_partner),
                       "by_purpose": _rows(report.by_purpose), "timeline": _rows(report.timeline)}, indent=2)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "key", *COLUMNS))
    for section, group in (("partner", report.by_partner), ("purpose", report.by_purpose),
                           ("day", report.timeline)):
        for row in _rows(group):
            writer.writerow((section, row["key"], *(row[c] for c in COLUMNS)))
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


def to_html(report: Report, log_name: str, verdict: str) -> str:
    """One self-contained page: no scripts, no external files."""
    style = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}td:first-child{text-align:left}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Audit report: "
            f"{html.escape(log_name)}</title><style>{style}</style></head><body>"
            f"<h1>Audit report: {html.escape(log_name)}</h1>"
            f"<p>Verification: {html.escape(verdict)}</p>"
            f"<p>{report.entries} entries from {html.escape(report.first)} to {html.escape(report.last)}</p>"
            + _html_table("Per partner", report.by_partner) + _html_table("Per purpose", report.by_purpose)
            + "<h2>Timeline (UTC days)</h2>" + _svg_timeline(report)
            + _html_table("Per day", report.timeline) + "</body></html>")
