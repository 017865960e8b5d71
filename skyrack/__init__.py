"""skyrack: orbital AI compute as software you can run.

A digital twin of a real satellite (orbit, sunlight, power, heat, radiation) drives a real
training job and a real language model; the same physics sizes orbital data centres.
"""

# The one declaration of the version: pyproject.toml reads it (setuptools dynamic version).
__version__ = "0.1.0"
