"""data: BBBC021 metadata and field selection, sources (local, HTTP, S3), fetching, the synthetic mini data set."""
