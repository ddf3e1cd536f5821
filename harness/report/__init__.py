"""Reports from the results store: the terminal summary table and `bench report`.

Modules:

    build        `bench report SUITE|claims`: lays out the sections and writes
                 reports/<target>/ (index.html, report.md, fig-*.png)
    suite_data   a suite's rows of the results table, loaded and labelled (SuiteData)
    variants     the labels that tell apart a task's settings and a method's configs
    document     the tiny document model (Section of Text, Table, Image) and its two renderers
    figures      the matplotlib figures (learning curves, accuracy vs cost, memory ledger)
    format       the formatting rules every report table shares ("—" for unknown, never 0)
    claims_page  the claims section: every verdict file, coloured, with interval and seeds
    summary      the end-of-run terminal table `bench run` prints (rich), also the numbers the
                 report's results table reuses

Only the entry points the command line calls are re-exported here; everything else is
imported from its module. Importing this package does not import matplotlib (build.py
imports the figures module when a report draws them).
"""

from harness.report.build import build_report, cmd_report
from harness.report.suite_data import ReportError
from harness.report.summary import render, summarise

__all__ = ["ReportError", "build_report", "cmd_report", "render", "summarise"]
