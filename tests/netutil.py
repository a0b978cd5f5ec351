"""Test helpers for real servers on loopback: a free port, and a throwaway CA with a
serving certificate signed by it (for the registry and salt-api tests over HTTPS)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throwaway_tls(where: Path, ca_cn: str, server_cn: str, names: tuple[str, ...] = (),
                  stem: str = "server") -> tuple[Path, Path, Path]:
    """(ca.crt, <stem>.crt, <stem>.key) under ``where``: a CA valid for a day and a serving
    certificate for 127.0.0.1 (and the DNS ``names``) signed by it; the key 0600."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject, issuer, key, sign_key, ca, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(sign_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_cn)])
    ca = cert(ca_name, ca_name, ca_key, ca_key, True)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_cn)]), ca_name,
                  key, ca_key, False, san)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = where / "ca.crt", where / f"{stem}.crt", where / f"{stem}.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    files[2].chmod(0o600)
    return files
