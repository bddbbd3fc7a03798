"""Reports: a terminal table, and JSON, Markdown and one self-contained HTML page."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from qdht_interop._cases import AREAS
from qdht_interop._grades import (
    FAILED,
    GRADE_MEANINGS,
    GRADES,
    INFORMATIONAL,
    NON_STRICT,
    OK,
    UNIMPLEMENTED,
)
from qdht_interop._runner import RunReport

__all__ = ["render_html", "render_markdown", "render_table", "write_reports"]

_COLOURS: Final = {
    OK: "#1a7f37",
    NON_STRICT: "#9a6700",
    FAILED: "#cf222e",
    UNIMPLEMENTED: "#6e7781",
    INFORMATIONAL: "#0969da",
}


def _counts(report: RunReport) -> str:
    counts = report.counts()
    return ", ".join(f"{counts[g]} {g}" for g in GRADES if g in counts) or "no cases"


def render_table(report: RunReport) -> str:
    """The terminal table of one run (plain text, one line per case, details indented)."""
    lines = [f"target: {report.name}"]
    if report.contact:
        lines.append(f"contact: {report.contact}")
    if report.setup_error:
        lines.append(f"setup: FAILED: {report.setup_error}")
    width = max((len(r.id) for r in report.results), default=4)
    lines.append(f"{'case':<{width}}  {'grade':<13}  {'time':>6}  title")
    for r in report.results:
        lines.append(f"{r.id:<{width}}  {r.grade:<13}  {r.duration:>5.1f}s  {r.title}")
        if r.grade != OK:
            lines.extend(f"{'':<{width}}    - {d}" for d in r.details)
    lines.append(f"{_counts(report)} in {report.duration:.1f} s")
    return "\n".join(lines)


def render_markdown(reports: Sequence[RunReport]) -> str:
    out = ["# qdht-interop report", ""]
    for report in reports:
        out += [f"## {report.name}", ""]
        out.append(f"- target: `{report.target}`")
        if report.contact:
            out.append(f"- contact: `{report.contact}`")
        if report.setup_error:
            out.append(f"- setup FAILED: {report.setup_error}")
        out += [f"- result: {_counts(report)} in {report.duration:.1f} s", ""]
        out += ["| Case | Spec | Grade | Title | Details |", "|---|---|---|---|---|"]
        for r in report.results:
            details = "<br>".join(d.replace("|", "\\|") for d in r.details)
            out.append(f"| `{r.id}` | {r.spec} | **{r.grade}** | {r.title} | {details} |")
        out.append("")
    return "\n".join(out)


def _anchor(run: int, case_id: str) -> str:
    return f"r{run}-" + case_id.replace("/", "-").replace(".", "_")


def render_html(reports: Sequence[RunReport]) -> str:
    """One page, no scripts and nothing fetched: a verdict per target, the grade
    legend, the case-by-target matrix (each cell links to its details), then
    every case's details per target."""
    e = html.escape
    ids: list[str] = []
    titles: dict[str, tuple[str, str]] = {}
    for report in reports:
        for r in report.results:
            if r.id not in titles:
                ids.append(r.id)
                titles[r.id] = (r.title, r.spec)
    by = [{r.id: r for r in report.results} for report in reports]
    css = "".join(
        f".g-{g.lower().replace('-', '')}{{background:{c};color:#fff}}" for g, c in _COLOURS.items()
    )
    rows = []
    for case_id in ids:
        title, spec = titles[case_id]
        cells = []
        for run, results in enumerate(by):
            found = results.get(case_id)
            if found is None:
                cells.append("<td>—</td>")
                continue
            tip = e(" · ".join(found.details), quote=True)
            cls = "g-" + found.grade.lower().replace("-", "")
            cells.append(
                f'<td class="{cls}" title="{tip}">'
                f'<a href="#{_anchor(run, case_id)}">{e(found.grade)}</a></td>'
            )
        rows.append(
            f"<tr><th><code>{e(case_id)}</code></th><td>{e(title)}</td>"
            f"<td>{e(spec)}</td>{''.join(cells)}</tr>"
        )
    heads = "".join(f"<th>{e(r.name)}<br><small>{e(_counts(r))}</small></th>" for r in reports)
    sections = []
    for run, report in enumerate(reports):
        items = []
        for r in report.results:
            details = "".join(f"<li>{e(d)}</li>" for d in r.details)
            cls = "g-" + r.grade.lower().replace("-", "")
            items.append(
                f'<tr id="{_anchor(run, r.id)}"><td><code>{e(r.id)}</code><br>'
                f'<small>{e(r.spec)}</small></td><td class="{cls}">{e(r.grade)}</td>'
                f"<td>{r.duration:.1f} s</td><td>{r.linted}</td><td><ul>{details}</ul></td></tr>"
            )
        setup = f"<p>Setup FAILED: {e(report.setup_error)}</p>" if report.setup_error else ""
        sections.append(
            f"<h2>{e(report.name)}</h2><p>target <code>{e(report.target)}</code>"
            f"{' · contact <code>' + e(report.contact) + '</code>' if report.contact else ''}"
            f" · {e(_counts(report))} in {report.duration:.1f} s</p>{setup}"
            "<table><tr><th>Case</th><th>Grade</th><th>Time</th><th>Messages linted</th>"
            f"<th>Details</th></tr>{''.join(items)}</table>"
        )
    legend = ", ".join(f"<code>{a}</code> = {e(f)}" for a, f in AREAS.items())
    grades = "".join(
        f'<tr><td class="g-{g.lower().replace("-", "")}">{e(g)}</td><td>{e(m)}</td></tr>'
        for g, m in GRADE_MEANINGS.items()
    )
    verdicts = "".join(
        f"<li><strong>{e(r.name)}</strong>: "
        f"{'FAILED' if r.failed else 'passed'} ({e(_counts(r))})</li>"
        for r in reports
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>qdht-interop report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;"
        "padding:4px 8px;text-align:left;vertical-align:top}ul{margin:0;padding-left:1.2em}"
        "td a{color:inherit}tr:target{outline:3px solid #0969da}"
        f"{css}</style></head><body><h1>qdht-interop report</h1><ul>{verdicts}</ul>"
        f"<h2>Grades</h2><table>{grades}</table>"
        "<p>Within one case the worst grade wins. A target passes when no case is "
        "FAILED.</p>"
        f"<h2>Cases</h2><p>Case IDs are <code>area/section/n</code>: {legend}. "
        "Click a grade for its details.</p>"
        f"<table><tr><th>Case</th><th>Title</th><th>Spec</th>{heads}</tr>{''.join(rows)}</table>"
        f"{''.join(sections)}</body></html>\n"
    )


def write_reports(directory: Path, reports: Sequence[RunReport]) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(
            {"passed": all(not r.failed for r in reports), "runs": [r.to_json() for r in reports]},
            indent=2,
        )
        + "\n",
        "report.md": render_markdown(reports),
        "report.html": render_html(reports),
    }
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
