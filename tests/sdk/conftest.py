"""Starts the mock provider and the gateway (built binaries) on free loopback
ports for the SDK tests, and stops both by PID afterwards."""
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / os.environ.get("SWITCHYARD_PROFILE", "debug")
CLIENT_KEY = "sk-sy-sdk-test-key-000000001"
UPSTREAM_KEY = "sk-upstream-sdk-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def quickstart_env(mock_port: int) -> dict:
    """The quickstart's environment, every provider pointed at the mock."""
    return dict(
        os.environ,
        OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1",
        OPENAI_API_KEY=UPSTREAM_KEY,
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{mock_port}",
        ANTHROPIC_API_KEY=UPSTREAM_KEY,
        GEMINI_BASE_URL=f"http://127.0.0.1:{mock_port}",
        GEMINI_API_KEY=UPSTREAM_KEY,
        SWITCHYARD_KEY=CLIENT_KEY,
        RUST_LOG="warn",
    )


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    mock_port, gw_port = free_port(), free_port()
    mock = subprocess.Popen(
        [str(TARGET / "mock-provider"), "--listen", f"127.0.0.1:{mock_port}", "--expect-key", UPSTREAM_KEY],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{mock_port}/healthz")
        policy = tmp_path_factory.mktemp("policy") / "quickstart.yaml"
        # The tests steer the mock with x-mock-* headers; the quickstart
        # forwards no such header, so the test copy names them.
        quickstart = (ROOT / "examples" / "quickstart.yaml").read_text()
        policy.write_text(quickstart.replace("listener:\n", "listener:\n  forward_headers: [x-mock-*]\n", 1))
        env = quickstart_env(mock_port)
        gw = subprocess.Popen(
            [str(TARGET / "switchyard"), "serve", "--policy", str(policy),
             "--listen", f"127.0.0.1:{gw_port}", "--threads", "2", "--grace-seconds", "0",
             "--ledger", str(policy.parent / "usage.db")],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{gw_port}/healthz")
            yield f"http://127.0.0.1:{gw_port}/v1"
        finally:
            stop(gw)
    finally:
        stop(mock)


MATRIX_PROVIDERS = {
    "openai": "    kind: openai\n    base_url: http://{mock}/v1",
    "compat": "    kind: openai_compatible\n    base_url: http://{mock}/v1\n    compat: {{preset: vllm}}",
    "anthropic": "    kind: anthropic\n    base_url: http://{mock}",
    "gemini": "    kind: gemini\n    base_url: http://{mock}",
    "cohere": "    kind: cohere\n    base_url: http://{mock}",
}


@pytest.fixture(scope="session")
def matrix_gateway(tmp_path_factory):
    """A gateway with one alias per provider kind (`m-<kind>`), all served
    by one mock that speaks every wire format. Yields the root URL."""
    mock_port, gw_port = free_port(), free_port()
    mock = subprocess.Popen([str(TARGET / "mock-provider"), "--listen", f"127.0.0.1:{mock_port}"], stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{mock_port}/healthz")
        lines = ["version: 1", "listener: {forward_headers: [x-mock-*]}", "providers:"]
        for name, spec in MATRIX_PROVIDERS.items():
            lines += [f"  {name}:", spec.format(mock=f"127.0.0.1:{mock_port}"), f"    keys: [{{key: sk-{name}}}]"]
        lines.append("models:")
        for name in MATRIX_PROVIDERS:
            lines += [f"  m-{name}:", f"    targets: [{{provider: {name}, model: {name}-model}}]"]
        lines += ["client_keys:", "  - name: matrix", f"    key: {CLIENT_KEY}"]
        policy = tmp_path_factory.mktemp("matrix") / "matrix.yaml"
        policy.write_text("\n".join(lines) + "\n")
        gw = subprocess.Popen(
            [str(TARGET / "switchyard"), "serve", "--policy", str(policy), "--listen", f"127.0.0.1:{gw_port}",
             "--threads", "2", "--grace-seconds", "0", "--ledger", str(policy.parent / "usage.db")],
            env=dict(os.environ, RUST_LOG="warn"),
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{gw_port}/healthz")
            yield f"http://127.0.0.1:{gw_port}"
        finally:
            stop(gw)
    finally:
        stop(mock)


@pytest.fixture(scope="session")
def tls_gateway(tmp_path_factory):
    """The quickstart behind HTTPS: a test CA (trustme) signs the listener's
    certificate. Yields (base URL, path of the CA's PEM)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certs = tmp_path_factory.mktemp("tls")
    cert_file, key_file, ca_file = certs / "cert.pem", certs / "key.pem", certs / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    ca.cert_pem.write_to_path(str(ca_file))
    mock_port, gw_port, admin_port = free_port(), free_port(), free_port()
    mock = subprocess.Popen(
        [str(TARGET / "mock-provider"), "--listen", f"127.0.0.1:{mock_port}", "--expect-key", UPSTREAM_KEY],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{mock_port}/healthz")
        policy = certs / "quickstart.yaml"
        quickstart = (ROOT / "examples" / "quickstart.yaml").read_text()
        listener = (
            "listener:\n"
            f"  admin_address: 127.0.0.1:{admin_port}\n"
            f"  tls: {{cert_file: {cert_file}, key_file: {key_file}}}\n"
        )
        policy.write_text(quickstart.replace("listener:\n", listener, 1))
        env = quickstart_env(mock_port)
        gw = subprocess.Popen(
            [str(TARGET / "switchyard"), "serve", "--policy", str(policy),
             "--listen", f"127.0.0.1:{gw_port}", "--threads", "2", "--grace-seconds", "0",
             "--ledger", str(certs / "usage.db")],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The admin listener is plain HTTP: it says when the gateway is up.
            wait_http(f"http://127.0.0.1:{admin_port}/healthz")
            yield f"https://localhost:{gw_port}/v1", str(ca_file)
        finally:
            stop(gw)
    finally:
        stop(mock)
