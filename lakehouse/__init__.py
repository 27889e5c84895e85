"""The top of the product: the code location's assembly and the ``lakehouse`` command line."""
