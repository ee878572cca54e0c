# The metadata lives in pyproject.toml only; this file lets tools that
# still call setup.py (and `pip install -e .` with older pips) build it.
from setuptools import setup

setup()
