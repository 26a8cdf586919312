"""What the tests and the benchmarks share: the one way to run the workflow on the checkout (workflow), real local
servers — single-node Slurm, Ceph radosgw (live_servers, their scripts in server_scripts/) and nginx for byte
ranges (nginx). Part of the project so that benchmarks import it, not the tests."""
