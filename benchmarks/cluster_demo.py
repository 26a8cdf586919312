"""Wall time of the tiny demo (tests' config) run locally, through profiles/slurm-gpu on the test Slurm, and with
every file in a bucket of the test S3 server (Ceph radosgw), each from an empty work folder; servers' start-up
excluded. Needs root and `make setup`. Last line: local_seconds=<s> slurm_seconds=<s> s3_seconds=<s>"""

import secrets
import tempfile
import time
from pathlib import Path

from cellvae.testing.live_servers import rados_gateway, slurm_cluster
from cellvae.testing.workflow import snakemake, tiny_config

REPO = Path(__file__).resolve().parents[1]


def timed_run(root: Path, name: str, *args, env=None) -> float:
    workdir = root / name
    workdir.mkdir()
    started = time.monotonic()
    snakemake(workdir, *args, config=tiny_config(), env=env, timeout=3600)
    seconds = round(time.monotonic() - started, 1)
    print(f"{name}: {seconds} s", flush=True)
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cellvae-cluster-bench-") as tmp:
        root = Path(tmp)
        local = timed_run(root, "local", "--cores", "2")
        with slurm_cluster(root / "slurm-state") as slurm_env:
            slurm = timed_run(
                root,
                "slurm",
                "--profile",
                str(REPO / "profiles" / "slurm-gpu"),
                "--slurm-no-account",
                env={**slurm_env, "CELLVAE_SLURM_PARTITION": "cellvae-test"},
            )
        access_key, secret_key = "bench" + secrets.token_hex(6), secrets.token_hex(20)
        with rados_gateway(root / "ceph", 7480, access_key, secret_key) as gateway:
            s3 = timed_run(
                root,
                "s3",
                "--cores",
                "2",
                "--default-storage-provider",
                "s3",
                "--default-storage-prefix",
                "s3://cellvae-bench/tiny",
                env={
                    "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": gateway.endpoint,
                    "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": access_key,
                    "SNAKEMAKE_STORAGE_S3_SECRET_KEY": secret_key,
                },
            )
    print(f"local_seconds={local} slurm_seconds={slurm} s3_seconds={s3}")


if __name__ == "__main__":
    main()
