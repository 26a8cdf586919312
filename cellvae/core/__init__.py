"""core: configuration and its schema, option types, atomic files, logs, channel names."""
