"""TLS material for the emulated Kubernetes API: a private CA and a server certificate.

GKE hands clients the cluster CA (`masterAuth.clusterCaCertificate`, base64 PEM) and serves the
API over HTTPS with a certificate that CA signed. The emulator does the same so the wizard's
production path (https + CA file + bearer token) runs unchanged, and real kubectl verifies it.

`make_tls(hosts)` builds a CA and a server certificate whose SANs cover `hosts` (IP addresses
become IP SANs, anything else a DNS SAN). EC P-256 keys: generating both takes a few ms.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass
class TlsMaterial:
    """PEM strings (bytes are accepted and converted). `ca_b64` is what GKE puts in
    masterAuth.clusterCaCertificate and kubeconfigs put in certificate-authority-data."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    ca_b64: str = ""

    def __post_init__(self) -> None:
        self.ca_pem = _text(self.ca_pem)
        self.cert_pem = _text(self.cert_pem)
        self.key_pem = _text(self.key_pem)
        if not self.ca_b64:
            self.ca_b64 = base64.b64encode(self.ca_pem.encode()).decode()

    def server_context(self) -> ssl.SSLContext:
        """An SSLContext serving the certificate (the chain includes the CA)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain only reads files: write a private temp file and remove it at once.
        fd, path = tempfile.mkstemp(prefix="rhaii-sim-tls-", suffix=".pem")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.cert_pem)
                f.write(self.ca_pem)
                f.write(self.key_pem)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext that trusts only this CA (for tests and in-process clients)."""
        return ssl.create_default_context(cadata=self.ca_pem)

    def write_ca(self, path: str) -> str:
        with open(path, "w") as f:
            f.write(self.ca_pem)
        return path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls(hosts: Iterable[str] = DEFAULT_HOSTS, *, days: int = 3650) -> TlsMaterial:
    """A fresh CA and a server certificate for `hosts` (IPs -> IP SANs, names -> DNS SANs)."""
    hosts = tuple(hosts) or DEFAULT_HOSTS
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    until = now + _dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("rhaii-sim-cluster-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TlsMaterial(
        ca_pem=ca_cert.public_bytes(pem).decode(),
        cert_pem=cert.public_bytes(pem).decode(),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
    )
