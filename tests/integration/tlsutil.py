"""TLS helpers for the integration suites (test_tls_security.py,
test_token_hygiene.py): a private CA made with the openssl command line,
an HTTPS node (a subclass of harness.Node) and an SSE reader over TLS.

The harness itself speaks plain HTTP; nothing here changes it.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import _DEFAULT, Node, decode_body

_CA_CNF = """[ ca ]
default_ca = CA_default
[ CA_default ]
database = index.txt
new_certs_dir = issued
serial = serial.txt
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
"""


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(cmd),
                                                r.stderr.decode(errors="replace")))
    return r


class PKI:
    """A private CA in a temporary directory; issue() makes leaf certs."""

    def __init__(self, name="ContextSync test CA"):
        self.dir = tempfile.mkdtemp(prefix="cs-it-pki-")
        os.mkdir(os.path.join(self.dir, "issued"))
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(_CA_CNF)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial.txt"), "w") as f:
            f.write("1000\n")
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.ca_key,
              "-out", self.ca, "-days", "30", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)
        os.chmod(self.ca_key, 0o600)

    def issue(self, name, cn=None, server=False, start=None, end=None,
              days=30):
        """(cert_path, key_path) of a new leaf certificate. start/end:
        'YYYYMMDDHHMMSSZ' for certificates outside their validity."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        _run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
              csr, "-subj", "/CN=" + (cn or name)], self.dir)
        os.chmod(key, 0o600)
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        cmd = ["openssl", "ca", "-batch", "-config", "ca.cnf", "-cert",
               self.ca, "-keyfile", self.ca_key, "-in", csr, "-out", crt,
               "-extfile", ext, "-notext"]
        if start or end:
            cmd += ["-startdate", start or "20200101000000Z",
                    "-enddate", end or "20200201000000Z"]
        else:
            cmd += ["-days", str(days)]
        _run(cmd, self.dir)
        return crt, key

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def client_context(ca=None, cert=None, key=None, max_tls12=False):
    ctx = ssl.create_default_context(cafile=ca) if ca else \
        ssl.create_default_context()
    if cert:
        ctx.load_cert_chain(cert, key)
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TLSNode(Node):
    """A node serving HTTPS (--tls-cert/--tls-key), with mutual TLS
    (--tls-client-ca) unless mtls=False. Its server certificate and a
    client certificate come from `pki`; req() presents the client
    certificate (cert=None: none)."""

    def __init__(self, node_id, region, pki, mtls=True, extra_args=(),
                 **kw):
        self.pki = pki
        self.cert_path, self.key_path = pki.issue(
            "srv-" + node_id + "-" + str(time.monotonic_ns()), cn=node_id,
            server=True)
        self.client_cert, self.client_key = pki.issue(
            "cli-" + node_id + "-" + str(time.monotonic_ns()),
            cn="client-of-" + node_id)
        args = ["--tls-cert", self.cert_path, "--tls-key", self.key_path]
        if mtls:
            args += ["--tls-client-ca", pki.ca]
        super().__init__(node_id=node_id, region=region,
                         extra_args=args + list(extra_args), **kw)

    def start(self):
        super().start()  # its /health probe goes through our req()
        self.url = "https://127.0.0.1:%d" % self.port
        return self

    def context(self, cert=_DEFAULT, max_tls12=False):
        if cert is _DEFAULT:
            cert = (self.client_cert, self.client_key)
        return client_context(self.pki.ca, *(cert or (None, None)),
                              max_tls12=max_tls12)

    def req(self, method, path, body=None, token=_DEFAULT, headers=None,
            raw_body=None, query=None, timeout=30, cert=_DEFAULT,
            conn=None):
        if query:
            items = query.items() if isinstance(query, dict) else query
            items = [(k, str(v) if not isinstance(v, str) else v)
                     for k, v in items if v is not None]
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(
                items, quote_via=urllib.parse.quote, safe="")
        hdrs = {}
        hdrs.update(self.auth_headers(token))
        data = None
        if raw_body is not None:
            data = raw_body
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        for k, v in (headers or {}).items():
            for old in [h for h in hdrs if h.lower() == k.lower()]:
                del hdrs[old]
            if v is not None:
                hdrs[k] = v
        own = conn is None
        if own:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout,
                context=self.context(cert))
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, rh, decode_body(rh, raw)
        finally:
            if own:
                conn.close()

    def peer_cn(self):
        """CN of the certificate the node presents to a new connection."""
        ctx = self.context()
        with socket.create_connection(("127.0.0.1", self.port), 10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                subj = dict(x[0] for x in t.getpeercert()["subject"])
                return subj.get("commonName")


class TLSStream:
    """An SSE stream over HTTPS read in a background thread; .text holds
    everything received, .closed is set at EOF."""

    def __init__(self, node, path, token=_DEFAULT, query=None):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        self.conn = http.client.HTTPSConnection("127.0.0.1", node.port,
                                                timeout=30,
                                                context=node.context())
        hdrs = {"Accept": "text/event-stream"}
        hdrs.update(node.auth_headers(token))
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.text = ""
        self.closed = threading.Event()
        self._lock = threading.Lock()
        if self.status == 200:
            threading.Thread(target=self._run, daemon=True).start()
        else:
            self.text = self.resp.read().decode("utf-8", "replace")
            self.closed.set()

    def _run(self):
        try:
            while True:
                data = self.resp.read1(65536)
                if not data:
                    break
                with self._lock:
                    self.text += data.decode("utf-8", "replace")
        except Exception:
            pass
        finally:
            self.closed.set()

    def wait_for(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if needle in self.text:
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.conn.close()
