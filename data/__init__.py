"""Dataset generators, installed as physode.datasets."""
