"""`memex capacity`: disk, memory, workers and API replicas for a given corpus and load.

The estimate is arithmetic on constants measured on an installation (`benchmarks/capacity.py` measures and
stores them in MEMEX_DATA_DIR/capacity.json); without that file it uses the defaults shipped here, which say
which machine they were measured on.
"""
