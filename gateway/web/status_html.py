"""The status page's HTML, rendered on the server from the status document. Pure.

Every value is escaped (deployment ids, model names and labels are config, that is user input).
The page is complete without JavaScript: it shows the state at load time. ``status.js`` then
refreshes it in place from ``status.json``, using only what this module writes into the markup:

- a ``<table data-source="traffic">`` shows the document's ``traffic`` rows, one
  ``<tr data-key="...">`` per row, and a ``<template>`` of an empty row for rows that appear later;
- a cell ``data-field="requests_per_second" data-format="rate"`` shows that field of its row in
  that format (and, with ``data-alarm``, whether it is above zero), and an element
  ``data-summary="..."`` a field of the document's ``summary``.

``FORMATS`` and ``status.js`` format values alike: ``text``, ``count``, ``rate`` (per second),
``ms`` (seconds shown in milliseconds), ``pct`` (a ratio), ``percent``, ``up``, ``state``, ``arms`` and
``shadows``; ``None`` shows as an en dash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

DASH = "\u2013"
REFRESH_SECONDS = 3


def _number(value: float) -> str:
    """As JavaScript's ``String(number)`` writes everyday numbers: 90 and 0.5, not 90.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _text(value: Any) -> str:
    return DASH if value is None or value == "" else str(value)


def _or_dash(write: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda value: DASH if value is None else write(value)


def _arms(arms: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"{arm['arm']}: {arm['share'] * 100:.1f} % (weight {_number(arm['weight'])})" for arm in arms]
    return ", ".join(parts) or DASH


def _shadows(shadows: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"{s['arm']}: {'?' if s['percent'] is None else _number(s['percent'])} %" for s in shadows]
    return ", ".join(parts) or DASH


FORMATS: dict[str, Callable[[Any], str]] = {
    "text": _text,
    "count": _or_dash(lambda value: str(round(value))),
    "rate": _or_dash(lambda value: f"{value:.2f}/s"),
    "ms": _or_dash(lambda value: f"{value * 1000:.1f} ms"),
    "pct": _or_dash(lambda value: f"{value * 100:.1f} %"),
    "percent": _or_dash(lambda value: f"{_number(value)} %"),  # a percent given as one (config)
    "up": lambda value: "up" if value else "down",
    "state": _text,
    "arms": lambda value: _arms(value or ()),
    "shadows": lambda value: _shadows(value or ()),
}
_STATEFUL = frozenset({"up", "state"})  # these cells carry data-state too, for their colour


@dataclass(frozen=True, slots=True)
class Column:
    field: str
    title: str
    format: str = "text"
    alarm: bool = False  # a value above zero is bad news: the cell says so (``data-alarm``)

    @property
    def numeric(self) -> bool:
        return self.format in ("count", "rate", "ms", "pct", "percent")


@dataclass(frozen=True, slots=True)
class Table:
    source: str  # the document's key holding the rows
    title: str
    caption: str
    columns: tuple[Column, ...]  # the first is the row header
    empty: str


TABLES = (
    Table(
        "traffic",
        "Traffic",
        "Requests per deployment (or model) and arm over the last minute; errors are 5xx answers.",
        (
            Column("name", "Deployment or model"),
            Column("arm", "Arm"),
            Column("requests_per_second", "Requests", "rate"),
            Column("errors_per_second", "Errors", "rate", alarm=True),
            Column("error_ratio", "Error ratio", "pct", alarm=True),
            Column("p50_seconds", "p50 latency", "ms"),
            Column("p99_seconds", "p99 latency", "ms"),
            Column("requests_total", "Total requests", "count"),
        ),
        "No traffic yet.",
    ),
    Table(
        "shadows",
        "Shadow agreement",
        "Shadow copies per deployment and arm: answers compared with the primary's, since start.",
        (
            Column("deployment", "Deployment"),
            Column("arm", "Shadow arm"),
            Column("percent", "Copied", "percent"),
            Column("agree", "Agree", "count"),
            Column("disagree", "Disagree", "count", alarm=True),
            Column("error", "Errors", "count", alarm=True),
            Column("dropped", "Dropped", "count", alarm=True),
            Column("agreement", "Agreement", "pct"),
            Column("agreement_window", "Agreement, last minute", "pct"),
        ),
        "No shadow traffic configured.",
    ),
    Table(
        "deployments",
        "Deployments",
        "Configured deployments: the model they serve, their traffic split and shadow copies.",
        (
            Column("id", "Deployment"),
            Column("model", "Model"),
            Column("backend", "Backend"),
            Column("split", "Arms: share (weight)", "arms"),
            Column("sticky_header", "Sticky header"),
            Column("shadow", "Shadows: percent copied", "shadows"),
            Column("pin", "Pin"),
        ),
        "No deployments configured.",
    ),
    Table(
        "backends",
        "Backends",
        "ModelServer backends and their latest health probe.",
        (Column("name", "Backend"), Column("up", "State", "up"), Column("reason", "Why not up")),
        "No backends configured.",
    ),
    Table(
        "models",
        "Model versions",
        "Versions and states from each backend's GetModelStatus, refreshed every few seconds.",
        (
            Column("model", "Model"),
            Column("version", "Version"),
            Column("state", "State", "state"),
            Column("backend", "Backend"),
            Column("error", "Error"),
        ),
        "No models configured.",
    ),
)

_SUMMARY = (
    ("requests_per_second", "Requests", "rate"),
    ("errors_per_second", "Errors", "rate"),
    ("backends_up", "Backends up", "count"),
    ("deployments", "Deployments", "count"),
)


def _attrs(**attrs: str | None) -> str:
    """HTML attributes: ``class_`` is ``class``, ``data_key`` is ``data-key``; ``None`` leaves one out."""
    given = ((name.rstrip("_").replace("_", "-"), value) for name, value in attrs.items() if value is not None)
    return "".join(f' {name}="{escape(value)}"' for name, value in given)


def cell(column: Column, row: Mapping[str, Any] | None, header: bool = False) -> str:
    """One cell: ``row``'s value in the column's format, or an empty cell for the template."""
    value = row.get(column.field) if row is not None else None
    text = FORMATS[column.format](value) if row is not None else ""
    state = text if column.format == "up" else _text(value) if column.format == "state" else None
    tag = "th" if header else "td"
    attrs = _attrs(
        scope="row" if header else None,
        class_="num" if column.numeric else None,
        data_field=column.field,
        data_format=column.format,
        data_state=state if row is not None and column.format in _STATEFUL else None,
        data_alarm=_alarm(value) if column.alarm else None,
    )
    return f"<{tag}{attrs}>{escape(text)}</{tag}>"


def _alarm(value: Any) -> str:
    return "true" if isinstance(value, int | float) and value > 0 else "false"


def _row(table: Table, row: Mapping[str, Any] | None) -> str:
    cells = "".join(cell(column, row, header=i == 0) for i, column in enumerate(table.columns))
    key = _attrs(data_key=str(row["key"])) if row is not None else ""
    return f"<tr{key}>{cells}</tr>"


def table(spec: Table, rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    heads = "".join(
        f'<th scope="col"{_attrs(class_="num" if c.numeric else None)}>{escape(c.title)}</th>' for c in spec.columns
    )
    body = "".join(_row(spec, row) for row in rows)
    empty = (
        f'<tr class="empty"{" hidden" if rows else ""}><td colspan="{len(spec.columns)}">{escape(spec.empty)}</td></tr>'
    )
    return (
        f'<section aria-labelledby="{spec.source}-title"><h2 id="{spec.source}-title">{escape(spec.title)}</h2>'
        # A region that may scroll sideways on a narrow screen: focusable, so keys can scroll it.
        f'<div class="scroll" tabindex="0" role="region" aria-labelledby="{spec.source}-title">'
        f'<table id="{spec.source}" data-source="{spec.source}">'
        f"<caption>{escape(spec.caption)}</caption><thead><tr>{heads}</tr></thead>"
        f"<tbody>{body}{empty}</tbody>"
        f"<template>{_row(spec, None)}</template></table></div></section>"
    )


def _figure(summary: Mapping[str, Any], field: str, fmt: str) -> str:
    value = FORMATS[fmt](summary.get(field))
    return f'<span data-summary="{field}" data-format="{fmt}">{escape(value)}</span>'


def _summary(summary: Mapping[str, Any]) -> str:
    items = []
    for field, title, fmt in _SUMMARY:
        suffix = (
            f'<span class="of"> of {_figure(summary, "backends", "count")}</span>' if field == "backends_up" else ""
        )
        items.append(
            f'<div class="metric"><dt>{escape(title)}</dt><dd>{_figure(summary, field, fmt)}{suffix}</dd></div>'
        )
    return f'<dl class="summary" aria-live="polite">{"".join(items)}</dl>'


def _time(stamp: str) -> str:
    return f'<time id="generated" datetime="{escape(stamp)}">{escape(stamp[11:19])} UTC</time>'


def page(document: Mapping[str, Any], *, version: str, links: Sequence[tuple[str, str]]) -> str:
    """The whole page for ``document`` (``gateway.pipeline.overview``); ``links`` are (href, text)."""
    nav = "".join(f'<li><a href="#{t.source}">{escape(t.title)}</a></li>' for t in TABLES)
    raw = "".join(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in links)
    sections = "".join(table(spec, document.get(spec.source, ())) for spec in TABLES)
    window = _number(round(float(document.get("window_seconds", 0.0))))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Status · tfserving-gateway</title>"
        '<link rel="stylesheet" href="status.css"><script src="status.js" defer></script></head>'
        f'<body data-refresh-seconds="{REFRESH_SECONDS}">'
        '<a class="skip" id="skip" href="#main">Skip to content</a>'
        '<header class="top"><div class="brand"><h1>tfserving-gateway</h1>'
        f'<span class="version">{escape(version)}</span></div>'
        # Only the refresh state is announced, and only when it changes: not every tick of the clock.
        '<div class="controls"><p class="updated"><span id="refresh-state" aria-live="polite">'
        f"As loaded</span> · {_time(str(document.get('generated_at', '')))}"
        f' · rates over the last <span id="window">{window} s</span></p>'
        '<button type="button" id="pause" aria-pressed="false" hidden>Pause updates</button></div></header>'
        f'<nav class="sections" aria-label="Sections"><ul>{nav}</ul><ul class="raw">{raw}</ul></nav>'
        f'<main id="main" tabindex="-1">{_summary(document.get("summary", {}))}'
        f"{sections}</main></body></html>"
    )
