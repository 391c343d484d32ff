"""Floor 1: the problems, their exact solvers and canonical encoding, and the bounds.

Pure numpy / networkx / sympy: nothing here imports torch, so the mathematics can be read,
tested and used without a deep-learning stack.
"""
