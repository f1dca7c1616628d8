"""The suite: its schema (``schema``), reading a YAML file with line-numbered errors (``loader``),
expanding it into cells (``matrix``) and the JSON Schema of suites with every plugin's
parameters (``json_schema``)."""
