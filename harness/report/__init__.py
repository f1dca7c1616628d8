"""The run report: one self-contained HTML page per run (``run_report``), its training views
(``training``), the HTML helpers both use (``markup``) and the summary table a run ends with in
the terminal (``terminal_summary``)."""
