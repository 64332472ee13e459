"""Monitors: pure detectors and window statistics; Evidently behind one module.

Layout: ``windows.py`` (rows -> numpy arrays), ``catalog.py`` (every signal name), ``detectors/``
(one concept per module, pure), ``runner.py`` (one pass over all detectors, pure), ``edges.py``
(store in, store and Prometheus out), ``evidently_report.py`` (the only Evidently import).

What the composition root wires, once per check interval::

    reference, current = edges.build_windows(engine, settings.monitors, active_version,
                                             reference_examples, now, labels=settings.model.labels)
    signals = runner.run_checks(reference, current, settings.monitors, now=now,
                                tokenizer=edges.hf_tokenizer(tokenizer), predict=predict_labels)
    edges.store_signals(engine, signals)
    edges.export_signals(metrics.monitors, signals)

and ``catalog.known_signals(settings.monitors.attributes, settings.model.labels)`` for policy
validation.
"""
