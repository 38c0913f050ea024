"""hepdl's throughput benchmarks: run on demand with ``python -m benchmarks``, never as tests."""
