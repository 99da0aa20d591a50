"""`make bench`: Cairn's engine measured against hand-written Temporal code, in one run (docs/performance.md#the-benchmark)."""
