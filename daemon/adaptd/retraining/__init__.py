"""Retraining: dataset assembly, the fine-tune child process, validation, promotion, probation.

One run (:class:`adaptd.retraining.job.RetrainJob`): labelled feedback from the window (or a
labelled file for the very first adapter) plus a replay sample of earlier training data, the
newest labels held out; a LoRA fine-tune in a child process (or a Ray task) warm-started from
the active adapter; the candidate and the champion scored on the held-out recent data and on the
golden set; the gates decide; pass -> promote (or wait for approval), fail -> reject with the
failing gate. After a promotion, :func:`adaptd.retraining.probation.decide` watches for a
regression and asks for a rollback.

Gates (``validation.gates``), in the spirit of TFX's Evaluator and MLflow's MetricThreshold,
each compared number with its confidence interval (``adaptd.retraining.validation``)::

    validation:
      gates:
        - {metric: accuracy, slice: recent, min_gain: 0.0}   # surely better on the shifted data
        - {metric: accuracy, slice: golden, max_drop: 0.02}  # no significant loss > 2 points
        - {metric: dp_diff, slice: gender, max: 0.1}         # bias on an attribute slice
        - {metric: accuracy_gap, slice: gender, max_rise: 0.02}
      not_judged: block        # a missing slice or too-small group blocks (or: pass)
      alpha: 0.10              # intervals are two-sided at 1 - alpha

- ``recent`` is the newest held-out labelled data, new to the candidate and to the champion;
  ``golden`` is ``validation.golden_file`` or a sample of the first training data frozen in
  the store's ``replay_sets`` table (never trained on). ``dp_diff`` and ``accuracy_gap`` take an
  attribute name as slice and are measured on the recent data grouped by it; slices and groups
  under ``monitors.min_group_size`` rows are not judged.
- ``min_gain`` needs the lower end of the paired interval of the improvement above it;
  ``max_drop``/``max_rise`` fail on a significant change beyond the margin; ``min``/``max`` bound
  the point value. Relative bounds are skipped (reported as such) without a champion.
- Without a champion (the first adapter) every judged slice must beat always answering the
  majority class: the lower end of the accuracy's Wilson interval above the majority share.
- Every gate's value, interval, the champion's, the difference and the outcome are stored as
  the adapter's ``verdict`` and in the run's details; a promoted adapter's scored holdout and
  golden rows are stored as its monitoring reference (table ``reference_rows``).
"""
