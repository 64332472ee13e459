"""Evaluation: the measurements (and their confidence intervals) that monitors, gates and
probation share, so one name means one computation everywhere."""
