"""Retraining: dataset assembly, the fine-tune child process, validation, promotion, probation.

One run (:class:`adaptd.retraining.job.RetrainJob`): labelled feedback from the window (or a
labelled file for the very first adapter) plus a replay sample of earlier training data, the
newest labels held out; a LoRA fine-tune in a child process (or a Ray task) warm-started from
the active adapter; the candidate and the champion scored on the held-out recent data and on the
golden set; the gates decide; pass -> promote (or wait for approval), fail -> reject with the
failing gate. After a promotion, :func:`adaptd.retraining.probation.decide` watches for a
regression and asks for a rollback.

Gates (``validation.gates``), in the spirit of TFX's Evaluator and MLflow's MetricThreshold::

    validation:
      gates:
        - {metric: accuracy, slice: recent, min: 0.6}        # absolute bound
        - {metric: accuracy, slice: recent, max_drop: 0.0}   # no worse than the champion
        - {metric: accuracy, slice: golden, max_drop: 0.01}  # forgetting: at most 1 point lost
        - {metric: dp_diff, slice: gender, max: 0.1}         # bias on an attribute slice
        - {metric: accuracy_gap, slice: gender, max_rise: 0.02}
      significance: mcnemar     # or bootstrap, or none
      alpha: 0.05

- ``recent`` is the newest held-out labelled data; ``golden`` is ``validation.golden_file`` or a
  sample of the first training data frozen in ``state_dir/replay/golden.jsonl`` (never trained
  on). ``dp_diff`` and ``accuracy_gap`` take an attribute name as slice and are measured on the
  recent data grouped by it (groups under 10 examples are left out).
- ``min``/``max`` are absolute; ``max_drop``/``max_rise`` are relative to the champion and are
  skipped (reported as such) when there is none.
- On top of the gates, the candidate must beat the champion on recent data significantly
  (one-sided exact McNemar test or paired bootstrap of the accuracy gain above
  ``min_improvement``); without a champion it must beat always answering the majority class
  (exact binomial test). A model trained on shuffled labels fails this whatever its luck.
- Every gate's value, the champion's value, the threshold and the outcome are stored as the
  adapter's ``verdict`` and in the run's details.
"""
