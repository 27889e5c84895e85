"""Where the long-lived ingest workers keep their state in a location's store.

Its own module so that a reader of the workers' status (``lakehouse status``) does not import
the ingest engine and its dataframe libraries (about half a second).
"""

STATE_PREFIX = "_workers/ingest"
