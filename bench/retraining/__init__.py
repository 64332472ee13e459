"""Retraining benchmarks: fine-tune throughput against a bare peft loop, and the demo's domain
shift (movies -> tweets) recovered by an incremental retrain. ``python -m bench.retraining``."""
