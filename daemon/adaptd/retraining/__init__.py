"""Retraining: dataset assembly, the fine-tune child process, validation, promotion."""
