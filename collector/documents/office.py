"""The typed report as documents: a PDF for funders (reportlab) and an Excel workbook
(openpyxl). Layout only, as render.py: every number comes from report.py, so a
document shows what `--format json` prints for the same period.

Neither needs a browser or an office suite. Text from Slurm (account names,
organisations) is escaped before it reaches reportlab's markup, and written to
Excel as plain strings, so it is shown as text and never read as markup or a
formula. Long text is cut as render.py says: the PDF shows at most SHOWN_MAX (200)
characters of any field, so a name of thousands of characters without a space still
fits a table row on a page; an Excel cell holds at most CELL_MAX (32,000). A cut
field ends with "… [cut, N characters]".
"""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from collector.documents import convert
from collector.documents.text import (
    CELL_MAX,
    OPTIONAL,
    PERCENT_UNITS,
    ROW_TYPES,
    SECTIONS,
    SHOWN_MAX,
    cell_of,
    cut,
    cut_fields,
    get_rows,
    heading,
    numeric,
    sections_of,
    service_lines,
    title_of,
)
from collector.engine import model
from collector.engine.rollup import SIZE_CLASSES

DOCUMENT_FORMATS = ("pdf", "xlsx")

# Sheet names (Excel allows 31 characters and no []:*?/\).
SHEETS = {"capacity": "Capacity", "clusters": "Clusters", "pools": "Pools",
          "categories": "Categories",
          "commercial": "Commercial", "partitions": "Partitions", "gpu_types": "GPU types",
          "access_modes": "Access modes", "countries": "Countries",
          "allocations": "Allocations", "job_mix.size": "Job size",
          "job_mix.phase": "Use phase", "service.queue_wait": "Queue wait",
          "energy.categories": "Energy", "energy.total": "Energy total",
          "efficiency.categories": "GPU efficiency",
          "efficiency.total": "GPU efficiency total",
          "efficiency.top_idle_projects": "Most idle projects",
          "efficiency.phases": "Efficiency by phase", "efficiency.sizes": "Efficiency by size",
          "accounts": "Accounts", "users": "Users", "unmapped_accounts": "Unmapped accounts"}


def header(column: str) -> str:
    """The label of a document key (the model's, e.g. 'gpu_hours' -> 'Used GPU-h'), else
    the name with its unit: 'used_gpu_hours' -> 'used [GPU-h]' (the dashboard's own
    columns)."""
    if column in convert.KEY_LABELS:
        return convert.KEY_LABELS[column]
    name = column.replace("_", " ")
    if "gpu_hours" in column:
        rest = column.replace("gpu_hours", "").strip("_").replace("__", "_")
        return f"{rest.replace('_', ' ') or 'used'} [GPU-h]"
    if column.endswith("_hours"):
        return f"{name.replace(' hours', '')} [h]"
    if column in ("share", "plan_ratio"):
        return f"{name} [%]"
    if column == "gpus":
        return "GPUs [count]"
    if column.endswith("_gpus"):
        return f"{name[:-5]} GPUs [count]"
    if column.startswith("jobs") or column.endswith("jobs"):
        return f"{name} [count]"
    return name


def render_document(report: model.Report, fmt: str) -> bytes:
    if fmt == "pdf":
        return pdf(report)
    if fmt == "xlsx":
        return xlsx(report)
    raise ValueError(f"unknown document format {fmt!r}; one of {', '.join(DOCUMENT_FORMATS)}")


# --- Excel -----------------------------------------------------------------------------
def _excel_value(value: object) -> object:
    if isinstance(value, list):
        value = "; ".join(map(str, value)) or None   # no warnings: an empty cell
    if isinstance(value, str):
        # Control characters are not allowed in a worksheet: shown as U+FFFD.
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", cut(value, CELL_MAX))
    return value


def _string_cells(row) -> None:
    from openpyxl.cell.cell import TYPE_STRING
    for c in row:
        if isinstance(c.value, str):
            c.data_type = TYPE_STRING  # never a formula, whatever the text


def xlsx(report: model.Report) -> bytes:
    """One sheet per table, numbers as numbers (shares as fractions shown as %), units
    in the header row; a first sheet with the title and the notes."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import TYPE_STRING
    from openpyxl.styles import Font

    wb = Workbook()
    about = wb.active
    about.title = "Report"
    h = heading(report)
    for row in (("Facility", h.facility), ("Cluster", h.cluster), ("Period", h.label),
                ("From", h.start), ("To", h.end), ("Time zone", h.timezone),
                ("Data until", h.data_until), ("Generated", h.generated),
                ("Last collection", h.last_collection)):
        about.append([_excel_value(v) for v in row])
        _string_cells(about[about.max_row])
    about.append(())
    for line in service_lines(report):
        about.append((_excel_value(line),))
        _string_cells(about[about.max_row])
    for c in about["A"]:
        c.font = Font(bold=True)
    about.column_dimensions["A"].width = 18
    about.column_dimensions["B"].width = 32
    bold = Font(bold=True)
    for _, key, columns in sections_of(report):
        ws = wb.create_sheet(SHEETS[key])
        headers = [convert.label(ROW_TYPES[key], c) for c in columns]
        ws.append(headers)
        for c in ws[1]:
            c.font = bold
        percent = {c for c in columns if convert.unit(ROW_TYPES[key], c) in PERCENT_UNITS}
        for row in get_rows(report, key):
            ws.append([_excel_value(row[c]) for c in columns])
            for col, c in zip(columns, ws[ws.max_row], strict=True):
                if isinstance(c.value, str):
                    c.data_type = TYPE_STRING  # never a formula, whatever the text
                elif col in percent and isinstance(c.value, int | float):
                    c.number_format = "0.0%"
                elif isinstance(c.value, float):
                    c.number_format = "#,##0.000"
                elif isinstance(c.value, int) and not isinstance(c.value, bool):
                    c.number_format = "#,##0"
        for i, text in enumerate(headers, 1):
            ws.column_dimensions[ws.cell(1, i).column_letter].width = max(12, len(text) + 2)
        ws.freeze_panes = "A2"
    sample = report.data_quality.rejected_sample
    if sample:
        ws = wb.create_sheet("Rejected lines")
        columns = ("source", "line_no", "reason", "line")
        ws.append([convert.label(model.RejectedLine, c) for c in columns])
        for c in ws[1]:
            c.font = bold
        for s in sample:
            ws.append([_excel_value(getattr(s, k)) for k in columns])
            _string_cells(ws[ws.max_row])
        ws.column_dimensions["D"].width = 100
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- PDF -------------------------------------------------------------------------------
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)


def _fonts() -> tuple[str, str]:
    """DejaVu Sans when installed (any Unicode in account names), else Helvetica."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for d in _FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
                pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
            return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


# What the PDF shows of each section, in the order of a monthly report to funders
# (shared/domain.md); user names stay out of a document that leaves the facility.
_PDF_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1. Capacity", ("capacity", "clusters")),
    ("2. Utilisation per partition", ("partitions",)),
    ("3. Usage per pool and category against quota", ("pools", "categories", "commercial")),
    ("4. Usage per access mode, country and GPU type", ("access_modes", "countries",
                                                       "gpu_types")),
    ("5. Allocations", ("allocations",)),
    ("6. Job mix", ("job_mix.size", "job_mix.phase")),
    ("7. Service", ("service.queue_wait",)),
    ("8. Data quality", ("unmapped_accounts",)),
    ("Annex: usage per project", ("accounts",)),
)
_TITLES = {key: title for title, key, _ in SECTIONS}
_COLUMNS = {key: columns for _, key, columns in SECTIONS}


def _category_chart(report: model.Report, font: str):
    """Used and quota GPU-hours per category, side by side."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    cats = get_rows(report, "categories")
    height = 60 + 26 * len(cats)
    d = Drawing(480, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 110, 30, 340, height - 50
    chart.data = [[c["quota_s"] for c in reversed(cats)],
                  [c["used_s"] for c in reversed(cats)]]
    chart.categoryAxis.categoryNames = [c["category"] for c in reversed(cats)]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = lambda v: f"{v:,.0f}"
    chart.bars[0].fillColor = colors.HexColor("#c9c9c9")
    chart.bars[1].fillColor = colors.HexColor("#4e79a7")
    chart.barSpacing = 1
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 110, height - 6
    legend.fontName, legend.fontSize = font, 8
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.colorNamePairs = [(colors.HexColor("#4e79a7"), "used"),
                             (colors.HexColor("#c9c9c9"), "quota")]
    d.add(legend)
    d.add(String(110, 4, "GPU-hours", fontName=font, fontSize=8))
    return d


def _size_chart(report: model.Report, font: str):
    """GPU-hours per category, stacked by job size class."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors

    rows = get_rows(report, "job_mix.size")
    cats = list(dict.fromkeys(r["category"] for r in rows))
    classes = [s for s in SIZE_CLASSES if any(r["size_class"] == s for r in rows)]
    if not cats or not classes:
        return None
    value = {(r["category"], r["size_class"]): r["used_s"] for r in rows}
    height = 50 + 22 * len(cats)
    d = Drawing(480, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 110, 20, 340, height - 45
    chart.categoryAxis.style = "stacked"
    chart.data = [[value.get((c, s), 0) for c in reversed(cats)] for s in classes]
    chart.categoryAxis.categoryNames = list(reversed(cats))
    for axis in (chart.categoryAxis.labels, chart.valueAxis.labels):
        axis.fontName, axis.fontSize = font, 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = lambda v: f"{v:,.0f}"
    palette = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#9c755f")
    for i in range(len(classes)):
        chart.bars[i].fillColor = colors.HexColor(palette[i % len(palette)])
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 110, height - 4
    legend.fontName, legend.fontSize = font, 7
    legend.columnMaximum = 1
    legend.deltax = 70
    legend.colorNamePairs = [(colors.HexColor(palette[i % len(palette)]), s)
                             for i, s in enumerate(classes)]
    d.add(legend)
    return d


def pdf(report: model.Report) -> bytes:
    """A4 document: a title page, then the eight parts of a monthly report."""
    # A table row cannot break across pages: every field is cut to SHOWN_MAX characters
    # (reportlab's LayoutError on a name of 4,000 characters otherwise).
    h = heading(report, SHOWN_MAX)
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    font, bold = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", base["BodyText"], fontName=font, fontSize=9, leading=12)
    small = ParagraphStyle("small", body, fontSize=7, leading=8.5)
    small_bold = ParagraphStyle("small_bold", small, fontName=bold)
    small_right = ParagraphStyle("small_right", small, alignment=2)
    small_bold_right = ParagraphStyle("small_bold_right", small_bold, alignment=2)
    h1 = ParagraphStyle("h1", base["Heading1"], fontName=bold)
    h2 = ParagraphStyle("h2", base["Heading2"], fontName=bold, fontSize=13)
    h3 = ParagraphStyle("h3", base["Heading3"], fontName=bold, fontSize=10)
    title = ParagraphStyle("title", base["Title"], fontName=bold, fontSize=26, leading=32)

    def para(text: object, style=body) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    story: list = [Spacer(1, 6 * cm), Paragraph(escape(h.facility), title),
                   Spacer(1, 0.6 * cm),
                   Paragraph(escape(f"GPU usage report {h.label}"), h1),
                   para(f"Cluster {h.cluster}; {h.start[:10]} to {h.end[:10]} "
                        f"({h.timezone}, {h.hours:,.0f} hours)."),
                   para(f"Data until {h.data_until}; last collection "
                        f"{h.last_collection}; generated {h.generated}."),
                   Spacer(1, 1 * cm)]
    cap, com = get_rows(report, "capacity")[0], get_rows(report, "commercial")[0]
    summary = [
        f"Available: {cap['available_s']:,.1f} GPU-hours of {cap['nominal_s']:,.1f} "
        f"nominal ({cell_of('capacity', 'availability', cap['availability'])}).",
        f"Used: {cap['allocated_s']:,.1f} GPU-hours; utilisation "
        f"{cell_of('capacity', 'utilisation', cap['utilisation'])}.",
        f"Commercial use: {cell_of('commercial', 'share_of_pool', com['share_of_pool'])} of "
        f"the {com['pool']} pool (limit {com['max_share_of_pool']:.0%}): "
        f"{'within the limit' if com['within_limit'] else 'OVER THE LIMIT'}.",
    ]
    story += [para(s) for s in summary]
    story.append(PageBreak())

    def table(key: str) -> Table | Paragraph:
        columns = _COLUMNS[key]
        rows = cut_fields(get_rows(report, key), SHOWN_MAX)
        if not rows:
            return para("(none)")
        right = {c for c in columns if numeric(key, c)}
        labels = {c: convert.label(ROW_TYPES[key], c) for c in columns}
        texts = [[cell_of(key, c, r[c]) for c in columns] for r in rows]
        data = [[Paragraph(escape(labels[c]), small_bold_right if c in right else small_bold)
                 for c in columns]]
        data += [[Paragraph(escape(t), small_right if c in right else small)
                  for c, t in zip(columns, row, strict=True)] for row in texts]
        # Widths follow the longest word of each column, within limits.
        need = [min(28, max(8, *(len(w) for w in labels[c].split()),
                            *(len(row[i]) for row in texts)))
                for i, c in enumerate(columns)]
        usable = A4[0] - 3 * cm
        t = Table(data, colWidths=[usable * n / sum(need) for n in need], repeatRows=1)
        t.setStyle(TableStyle([
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")]),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]))
        return t

    service = list(service_lines(report, SHOWN_MAX))
    sample = cut_fields(convert.to_json(report.data_quality.rejected_sample, h.timezone),
                        SHOWN_MAX)
    for part, keys in _PDF_PARTS:
        story.append(Paragraph(escape(part), h2))
        for key in keys:
            if key in OPTIONAL and not get_rows(report, key):
                continue
            story += [Paragraph(escape(_TITLES[key]), h3), table(key), Spacer(1, 0.3 * cm)]
            if key == "categories":
                story.append(_category_chart(report, font))
            if key == "job_mix.size":
                chart = _size_chart(report, font)
                if chart is not None:
                    story.append(chart)
        if part.startswith("7."):
            story.append(para(service[0]))
        if part.startswith("8."):
            story += [para(service[1]), para(service[2])]
            if sample:
                story.append(para("Sample of unreadable lines: " + "; ".join(
                    f"{s['source']} line {s['line_no']}: {s['reason']}" for s in sample)))

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(1.5 * cm, 1 * cm, title_of(report, SHOWN_MAX))
        canvas.drawRightString(A4[0] - 1.5 * cm, 1 * cm, f"page {doc.page}")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            topMargin=1.5 * cm, bottomMargin=1.8 * cm,
                            title=f"GPU usage {h.label}", author=h.facility,
                            subject=f"GPU usage report {h.label}")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
