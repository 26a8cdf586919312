"""imaging: CellProfiler runs, crops, PNG composition, training shards and datasets, orientations."""
