"""skyrack: orbital AI compute as software you can run.

A digital twin of a real satellite (orbit, sunlight, power, heat, radiation) drives a real
training job and a real language model; the same physics sizes orbital data centres.
"""

__version__ = "0.1.0"
