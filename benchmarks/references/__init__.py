"""Plain-PyTorch reference implementations, one module per model, used by the benchmarks (the same
network timed without Pyro) and by the tests (the Pyro objectives must compute the same losses).
"""
