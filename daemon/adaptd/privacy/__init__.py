"""What adaptd keeps of people's texts: full, redacted (typed placeholders) or only a keyed hash.

Every text that is persisted (prediction log, replay reservoir, golden set, run directories,
reference rows) goes through one :class:`~adaptd.privacy.guard.TextGuard`; see docs/privacy.md.
"""
