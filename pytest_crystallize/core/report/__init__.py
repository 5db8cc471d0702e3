"""Results for people: the summary payload, text tables and reports."""
