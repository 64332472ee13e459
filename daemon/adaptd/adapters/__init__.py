"""The adapter registry: versions of the LoRA adapter, their files, lineage and which one serves.

``layout`` knows the PEFT directory layout (content hash, compatibility with a base model, read
from the files without loading a model); ``files`` keeps version directories under the state
directory, written atomically; ``registry`` records versions in the store and moves the single
active version (import, promote, rollback, reject). Serving never imports this package: it polls
the store for the active version and loads its directory.
"""
