"""The catalog: workflow templates as data, validated against the block registry and the application catalog."""
