"""adaptd: keep a LoRA-adapted transformer classifier fit for the traffic it really sees."""

__version__ = "0.1.0"
