"""``python -m bench``: the list of benchmarks; each runs as ``python -m bench.<name>``.

Every benchmark runs adaptd and a peer on the same data, threads and machine in one run, and
prints the ratio. ``--quick`` keeps a run to a few minutes on 2 CPU cores.
"""

from __future__ import annotations

print(
    "benchmarks (--quick keeps each to a few minutes, where it has one):\n"
    "  python -m bench.serving      daemon vs plain transformers forward; logging on/off; "
    "promotions under load\n"
    "  python -m bench.memory       resident memory with 1-3 adapter versions loaded, shared vs "
    "merged copies (MiniLM, SmolLM2-135M)\n"
    "  python -m bench.gpu          serving and training throughput and MFU on a GPU (refuses "
    "without one)\n"
    "  python -m bench.monitoring   100k-row check vs Evidently DataDriftPreset; ADWIN vs river; "
    "the demo shift\n"
    "  python -m bench.retraining   trainer vs a bare peft+torch loop; serving during a retrain; "
    "the demo shift vs an oracle\n"
    "  python -m bench.adaptation   a real shift end to end over HTTP with the shipped policy vs "
    "frozen-feature baseline and an oracle\n"
    "  python -m bench.adaptation.recipe  the fine-tune recipe vs frozen-feature logistic "
    "regression\n"
    "  python -m bench.adaptation.gates  promotion gates on real predictions: shuffled, worse, "
    "forgetting and better candidates\n"
    "  python -m bench.adaptation.contrastive  the first adapter on a few hundred rows, the "
    "contrastive stage on and off, vs frozen-feature logistic regression\n"
    "  python -m bench.adaptation.setfit  the same on five folds of all 543 tweets, beside SetFit "
    "as published (the whole encoder trained)\n"
    "  python -m bench.adaptation.refinement STATE  the refinement gate on a real refinement: "
    "how often it passes, on how many judged rows\n"
    "  python -m bench.faults       kill -9 under traffic; feedback right after every answer; "
    "kill -9 at each step; SIGTERM restarts\n"
    "  python -m bench.soak --minutes N  resident memory over a soak with a promotion a minute\n"
    "  python -m bench.retention    retention of a million rows in batches vs one DELETE, "
    "with the log writing (SQLite, PostgreSQL)\n"
    "  python bench/adapter_check.py  registry compatibility check vs loading with peft"
)
