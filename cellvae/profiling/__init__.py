"""profiling: response profiles, MoA accuracy and paired comparisons, separation from DMSO, cell measurements."""
