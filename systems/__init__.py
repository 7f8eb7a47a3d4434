"""The zoo of declared dynamical systems, installed as physode.systems."""
