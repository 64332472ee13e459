"""Monitoring benchmark: adaptd's monitors against Evidently (window drift) and River (ADWIN)."""
