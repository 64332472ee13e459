"""The accuracy cost of training on redacted text, on the demo data: frozen mean-pooled MiniLM
features and a logistic regression (the "feature extraction" floor of PERFORMANCE.md section 11),
5-fold cross-validated on the texts as they are and on the same texts redacted.

Only texts the redactor changes are embedded again; the rest share the cached embeddings of
bench/adaptation/embeddings.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def cost(name: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from adaptd.privacy.redact import redact
    from bench.adaptation.embeddings import _embed, domain

    x, y, examples = domain(name)
    redacted = [redact(e.text).text for e in examples]
    changed = [i for i, (e, r) in enumerate(zip(examples, redacted, strict=True)) if e.text != r]
    x_red = x.copy()
    if changed:
        x_red[changed] = _embed([redacted[i] for i in changed])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    model = LogisticRegression(C=1.0, max_iter=2000)
    full = float(np.mean(cross_val_score(model, x, y, cv=folds)))
    red = float(np.mean(cross_val_score(model, x_red, y, cv=folds)))
    return {
        "rows": len(examples),
        "changed": len(changed),
        "accuracy_full": full,
        "accuracy_redacted": red,
        "examples": [redacted[i] for i in changed[:3]],
    }


if __name__ == "__main__":
    for domain_name in ("tweets", "movies"):
        result = cost(domain_name)
        print(  # noqa: T201
            f"{domain_name}: {result['changed']} of {result['rows']} texts changed; accuracy "
            f"{result['accuracy_full']:.4f} full, {result['accuracy_redacted']:.4f} redacted"
        )
        for text in result["examples"]:
            print("   ", text[:140].replace("\n", " "))  # noqa: T201
