"""Documents: the typed report laid out for people and programs. Here, and only
here (and at the dashboard's edge), GPU-seconds become rounded GPU-hours, instants
become ISO text and figures get their labels.

- `text`: terminal table, Markdown, CSV and JSON; the one CSV writer; cutting and
  escaping of text from Slurm users.
- `office`: the PDF for funders (reportlab) and the Excel workbook (openpyxl).
"""
