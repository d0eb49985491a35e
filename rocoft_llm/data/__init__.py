"""Instruction data: dataset ids, templates (the data pipeline builds on these)."""
