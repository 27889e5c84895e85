"""One storage layer for every lake location, built on obstore.

A :class:`Storage` is rooted at a URI (a folder, ``s3://``, ``az://``/``abfss://`` or ``gs://``)
and offers the few operations the engines need: list (from an offset), head, get, conditional
put and streaming copy between stores. Owns the interface every store offers
(:mod:`.interface`), the obstore backend (:mod:`.obstore_backend`: local, S3, Azure, GCS), the
GCS emulator's JSON-API backend (:mod:`.gcs_json`), opening and copying (:mod:`.factory`) and
table URIs (:mod:`.uris`). Callers import the names exported here.
"""

from pipelines.lake.storage.factory import (
    gives_md5,
    md5_hex,
    open_storage,
    stream_copy,
)
from pipelines.lake.storage.gcs_json import (
    GcsJsonStorage,
    gcs_emulator_endpoint,
)
from pipelines.lake.storage.interface import (
    CHUNK,
    Copied,
    ObjectInfo,
    Storage,
    StorageError,
    bytes_read,
    bytes_read_since,
    bytes_under,
    check_key,
    count_listed,
    count_read,
    objects_listed,
    one_line,
    stable_etag,
)
from pipelines.lake.storage.obstore_backend import (
    ObstoreStorage,
)
from pipelines.lake.storage.uris import (
    STORE_SCHEMES,
    TableUri,
    UriError,
    parse_uri,
)

__all__ = [
    "CHUNK",
    "STORE_SCHEMES",
    "Copied",
    "GcsJsonStorage",
    "ObjectInfo",
    "ObstoreStorage",
    "Storage",
    "StorageError",
    "TableUri",
    "UriError",
    "bytes_read",
    "bytes_read_since",
    "bytes_under",
    "check_key",
    "count_listed",
    "count_read",
    "gcs_emulator_endpoint",
    "gives_md5",
    "md5_hex",
    "objects_listed",
    "one_line",
    "open_storage",
    "parse_uri",
    "stable_etag",
    "stream_copy",
]
