"""qdht-bench: benchmarks that print a table and can write JSON.

Figures are medians over repeated runs, and each benchmark measures its own
baseline in the same run so that ratios survive a noisy shared machine.
"""

__all__: list[str] = []
