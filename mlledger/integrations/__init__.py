"""Bridges to the tools around mlledger: a script's argument parsers, MLflow, OpenLineage,
and the training hooks of Hugging Face ``transformers``, Lightning and Keras.

Each module imports the other tool lazily (an optional extra with an install
hint), so ``import mlledger`` never pulls them in.
"""
