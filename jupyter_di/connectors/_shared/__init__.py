"""Private helpers that several connector packages share: nothing here is a connector.

Engine-neutral pieces only (Arrow building without pandas, bookmark values, commit windows, the
Arrow work of sources no engine filters for, JSON records, the SQL shapes and write loop of the
embedded SQL databases).  A connector package (``postgres/``, ``duckdb/`` ...) imports from here
and from the top-level modules of ``jupyter_di.connectors``, never from another connector package
(``tests/test_layers.py`` checks it).
"""
