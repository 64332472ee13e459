"""Modeling: load a base model with a classification head, attach or create LoRA adapters.

Shared by serving (inference), retraining (fine-tune) and validation (champion vs candidate), so
all three see the same model for the same adapter directory. transformers and peft types stay in
this package and in the parts that run forward passes.
"""
