"""Results: the record format and records.jsonl (``records``), labels shared by every view
(``labels``), reading runs into DataFrames (``load``), exports (``export``), comparing two runs
(``compare``) and summaries of training cells over seeds (``seeds``)."""
