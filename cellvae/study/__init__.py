"""study: research code that only benchmarks/ import (statistics of the benchmark tables); no product module imports
it."""
