"""Tables.  One per-customer state table, written at each flush for the customers that changed.

``customer_to_state``: customer id (UTF-8 bytes) -> compact
:class:`~stream_app.core.state.CustomerState` (orjson bytes).  Not windowed: the
recent-activity windows live inside the state as event-time buckets (size
``[history].bucket_days``, kept ``[history].buckets_kept``, time basis the
event's own ``ts``), so a customer's changes since the last flush cost one
changelog message, and the timer sweep can read the table outside any window
context.
"""

from __future__ import annotations

from typing import Any

import faust

from ..core.settings import STATE_TABLE, Settings

MIB = 1024 * 1024


def make_state_table(app: faust.App, settings: Settings) -> Any:
    """The ``customer_to_state`` table (a Faust Table: typed Any, as Faust's is loose)."""
    return app.Table(
        STATE_TABLE,
        # Raw bytes keys, exactly the producers' message keys: the changelog
        # partition, table routing and the source partition then all agree.
        key_type=bytes,
        # bytes -> Faust's "raw" codec in both the store and the changelog: the
        # state encodes itself with orjson, once.
        value_type=bytes,
        partitions=settings.partitions,
        default=None,
        # RocksDB only (other stores ignore them): bounded memory per partition.
        options={
            "block_cache_size": settings.rocksdb_cache_mb * MIB,
            "write_buffer_size": settings.rocksdb_write_buffer_mb * MIB,
            "max_write_buffer_number": 2,
            "target_file_size_base": 16 * MIB,
        },
    )
