"""The record: one declaration per field (name, type, unit, label, group, doc, owner), the statuses and
the baseline's name, and the schema that validates a record and assembles one from typed parts."""
