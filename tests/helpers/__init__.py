"""Helpers shared by the test modules: servers, stores, ledgers, runs, the CLI, kernels."""
