# NiFi 2.x treats this directory as one Python package: it loads every module in it
# (loupe_pb2.py, the generated wire messages) before LoupeProcessor.py, which holds the
# processor. Nothing to do here.
