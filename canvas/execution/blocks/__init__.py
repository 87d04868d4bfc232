"""The built-in blocks, one module each; every module registers its block with canvas.execution.registry.

Modules whose names start with an underscore hold shared helpers and are not blocks.
"""
