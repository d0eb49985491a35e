"""Dataset catalog (data, not code): see catalog.yaml."""
