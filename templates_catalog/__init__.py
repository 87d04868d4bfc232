"""Applications and workflow templates as data, validated at load."""
