"""Evaluation: the LLM-Adapters generation protocol, lm-evaluation-harness, and re-scoring."""
