"""Fixtures more than one suite uses."""

import boto3
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_s3_endpoint():
    """moto's real S3 HTTP server on loopback, standing in for R2 (which speaks the S3 API)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_s3_client(endpoint: str):
    """An S3 client of the moto server; moto accepts any credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
