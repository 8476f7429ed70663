"""Fixtures for notification tests: a webhook receiver and an SMTP server on 127.0.0.1.

Test modules import the fixtures by name (``from tests.notify_fixtures import ...``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "notifier"
SMTP_PASSWORD = "smtp-password-for-tests"


class WebhookReceiver:
    """An HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []  # returned in turn; 200 once they run out
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-path"

    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> WebhookReceiver:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a server certificate for 127.0.0.1; return (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class MailHandler:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content)
        self.messages.append((envelope, message, session.authenticated))
        return "250 OK"


def check_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    valid = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
             and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=valid, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path):
    """Start an SMTP server in one of three modes; yield (handler, ini settings)."""
    controllers = []

    def start(security: str):
        ca, cert, key = make_certificates(tmp_path)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        handler = MailHandler()
        port = free_port()
        # aiosmtpd 1.4 counts only STARTTLS as TLS when it decides whether to offer
        # AUTH, so with implicit TLS the requirement is left off.
        options = {"authenticator": check_login,
                   "auth_require_tls": security == "starttls"}
        if security == "starttls":
            options.update(tls_context=server_tls, require_starttls=True)
        elif security == "tls":
            options.update(ssl_context=server_tls)
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        settings = {"smtp_host": "127.0.0.1", "smtp_port": str(port),
                    "smtp_security": security, "smtp_ca_file": str(ca),
                    "smtp_user": SMTP_USER, "smtp_password": SMTP_PASSWORD,
                    "email_from": "phonebook@example.com",
                    "email_to": "it@example.com, oncall@example.com"}
        return handler, settings

    yield start
    for controller in controllers:
        controller.stop()
