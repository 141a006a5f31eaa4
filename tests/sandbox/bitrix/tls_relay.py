"""TLS in front of the sandbox for clients that only speak https, without patching them.

b24pysdk builds `https://{domain}/rest/...` and sends token refreshes to the fixed host
`https://oauth.bitrix24.tech`. The test makes a throw-away CA and a server certificate for
127.0.0.1 and that host name with `cryptography`, and runs an HTTP CONNECT proxy on loopback that
terminates TLS with it and relays the plain bytes to the sandbox port its route names. The client
is pointed at it through its ordinary settings: `HTTPS_PROXY` and `REQUESTS_CA_BUNDLE` (requests
reads both), so certificate and host-name checks stay on. Nothing leaves 127.0.0.1: a target
without a route is refused, and the proxy resolves no names.
"""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def certificates_make(directory: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `hosts` (names or IPs): (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("sandbox test CA"))
        .issuer_name(_name("sandbox test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class TlsRelay:
    """CONNECT proxy on 127.0.0.1: `routes` maps "host:port" targets to plain sandbox ports."""

    def __init__(self, directory: Path, routes: dict[str, int]) -> None:
        self.routes = routes
        hosts = sorted({target.rsplit(":", 1)[0] for target in routes})
        self.ca_path, cert_path, key_path = certificates_make(directory, hosts)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_path, key_path)
        #: Every CONNECT target asked for, in order (refused ones too).
        self.connects: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so stop() is seen without a connection to wake accept()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tls-relay")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            self.connects.append(target)
            port = self.routes.get(target)
            if method != "CONNECT" or port is None:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
            with tls, socket.create_connection(("127.0.0.1", port)) as upstream:
                self._pipe(tls, upstream)

    @staticmethod
    def _pipe(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        """Relay both ways from one thread (an SSL socket must not be used by two at once)."""
        while True:
            readable, _, _ = select.select([tls, upstream], [], [], 30)
            if not readable:
                return
            try:
                for sock in readable:
                    if sock is tls:
                        data = tls.recv(65536)
                        while data and tls.pending():
                            data += tls.recv(tls.pending())
                        if not data:
                            return
                        upstream.sendall(data)
                    else:
                        data = upstream.recv(65536)
                        if not data:
                            return
                        tls.sendall(data)
            except (ssl.SSLError, OSError):
                return
