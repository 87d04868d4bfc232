"""The execution core: what flows between blocks, how block outputs are stored, variable placeholders, the block
base class and registry, and the built-in blocks.

Pure and database-free: no Flask, no SQLAlchemy, no Redis. The runner (elsewhere) loads a workflow, resolves its
variables, calls blocks in order and stores their outputs through this package.
"""
