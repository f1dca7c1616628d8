"""The run report: one self-contained HTML page per run (``run_report``), its training views
(``training``) and the HTML helpers both use (``markup``)."""
