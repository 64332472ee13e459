"""The demo: the whole loop on the embedded defaults, on real data (movie reviews meet tweets)."""
