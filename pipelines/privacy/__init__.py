"""Privacy: personal data recognized by its content, whatever its column is called.

Owns the content detectors (:mod:`.detect`: e-mail addresses, phone numbers, IP addresses,
payment cards, IBANs, configured patterns; findings that name column, detector and count, never
a value), the bounded sampling of a Delta table's data files they run on (:mod:`.sample`), and
the erasure of a subject from one Delta table with its read-back verification (:mod:`.erase`).
Imports only :mod:`pipelines.lake`; the sovereignty policy judges what it finds.
"""
