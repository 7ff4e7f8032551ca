"""FTP/TCP helper for the ftpct test lab (run with /usr/bin/python3 -c).

Every socket operation has a timeout; nothing here can block forever.

Subcommands:
  banner HOST PORT TIMEOUT
      Exit 0 if HOST:PORT answers with a "220" line within TIMEOUT seconds.
  connect HOST PORT TIMEOUT
      Try one TCP connect; print connected | refused | timeout | error:MSG.
  download HOST PORT USER PASS PATH MODE [trust-pasv]
      Log in, RETR PATH using MODE (pasv, epsv, port, eprt), print
      "LEN SHA256". A PASV data connection goes to the control connection's
      address (ftplib's default), or with trust-pasv to the address the 227
      names (ftplib's trust_server_pasv_ipv4_address).
  session HOST PORT USER PASS
      Log in, print "ready", then serve one command per stdin line, one
      reply line each ("ok ..." or "err ..."):
        pasv | epsv       -> ok PORT        (announced data port)
        connect           -> ok             (connect to the announced port)
        port | eprt       -> ok PORT        (listen locally, announce it)
        retr PATH         -> ok LEN SHA256  (transfer over the prepared data
                                             connection)
        quit              -> ok             (then exit)
      The session also ends after IDLE_TIMEOUT seconds without input.
  long-session HOST PORT USER PASS PATH ROUNDS [trust-pasv|active]
      On one control connection, ROUNDS times: RETR PATH, LIST, STOR a
      fresh blob into upload/ and RETR it back, all passive (PASV over
      IPv4), or with active all active (PORT with the local address).
      Every download must match (PATH the same each round, the blob what
      was sent). Prints "ok TRANSFERS" or "err ..." and exits 1.
  list-rounds HOST PORT USER PASS ROUNDS
      On one control connection, ROUNDS times PASV (EPSV over IPv6) and
      LIST; prints "ok SECONDS" for the rounds (the benchmark's
      control-heavy session).
  tls-calls CALLS CERT KEY
      A client and a server TLS object in one thread joined by memory BIOs:
      CALLS round trips of 8 bytes; prints "ok NS" per round trip (the
      benchmark's TLS calls).
  echo-server HOST PORT
      Listen on HOST:PORT, print "listening", then echo every accepted
      connection's bytes back (one thread per connection) until killed.
      Accepted connections stay open until the peer closes them.
  echo-client HOST PORT TIMEOUT
      Connect once; print "connected" (or "err MSG" and exit), then for
      every stdin line send it plus a newline and print "echo LINE" with the
      line read back (or "err MSG"). Ends at EOF or after IDLE_TIMEOUT.
"""

import ftplib
import hashlib
import io
import os
import select
import socket
import ssl
import sys
import threading
import time

IO_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0

# FTPS: None, "explicit" (AUTH TLS) or "implicit" (TLS from the first
# byte), from a leading --tls=MODE argument. The lab's certificates are
# self-signed: nothing is verified.
TLS = None


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose control connection is TLS from the start (port 990)."""

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        if host:
            self.host = host
        if port > 0:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.af = sock.family
        self.sock = self.context.wrap_socket(sock, server_hostname=self.host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def new_ftp():
    if TLS is None:
        return ftplib.FTP(timeout=IO_TIMEOUT)
    cls = ImplicitFTP_TLS if TLS == "implicit" else ftplib.FTP_TLS
    return cls(timeout=IO_TIMEOUT, context=tls_context())


def login(ftp, user, password):
    ftp.login(user, password)
    if TLS is not None:
        ftp.prot_p()


def banner(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            if TLS == "implicit":
                s = tls_context().wrap_socket(s)
            line = s.makefile("rb").readline()
            return 0 if line.startswith(b"220") else 1
    except OSError:
        return 1


def connect(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error:%s" % e


class Session:
    """One logged-in control connection and at most one pending data channel."""

    def __init__(self, host, port, user, password, trust_pasv=False):
        self.ftp = new_ftp()
        self.ftp.trust_server_pasv_ipv4_address = trust_pasv
        self.ftp.connect(host, port)
        login(self.ftp, user, password)
        self.ftp.voidcmd("TYPE I")
        self.peer = self.ftp.sock.getpeername()[0]
        # Where passive data connections go: the control connection's peer,
        # or (PASV, trusted) the address the 227 names.
        self.data_host = self.peer
        self.port = None
        self.data = None
        self.listener = None

    def reset(self):
        for s in (self.data, self.listener):
            if s is not None:
                s.close()
        self.port = self.data = self.listener = None

    def pasv(self):
        self.reset()
        host, self.port = ftplib.parse227(self.ftp.sendcmd("PASV"))
        self.data_host = host if self.ftp.trust_server_pasv_ipv4_address else self.peer
        return self.port

    def epsv(self):
        self.reset()
        _, self.port = ftplib.parse229(self.ftp.sendcmd("EPSV"), self.ftp.sock.getpeername())
        self.data_host = self.peer
        return self.port

    def connect_data(self):
        if self.port is None:
            raise RuntimeError("no passive port announced")
        self.data = socket.create_connection((self.data_host, self.port), timeout=IO_TIMEOUT)

    def active(self, extended):
        self.reset()
        local = self.ftp.sock.getsockname()[0]
        family = self.ftp.sock.family
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((local, 0))
        listener.listen(1)
        listener.settimeout(IO_TIMEOUT)
        self.listener = listener
        port = listener.getsockname()[1]
        if extended:
            proto = 1 if family == socket.AF_INET else 2
            self.ftp.voidcmd("EPRT |%d|%s|%d|" % (proto, local, port))
        else:
            if family != socket.AF_INET:
                raise RuntimeError("PORT needs IPv4")
            parts = local.split(".") + [str(port >> 8), str(port & 0xFF)]
            self.ftp.voidcmd("PORT " + ",".join(parts))
        return port

    def retr(self, path):
        if self.listener is None and self.data is None:
            self.connect_data()
        self.ftp.putcmd("RETR " + path)
        resp = self.ftp.getresp()
        if not resp.startswith("1"):
            raise ftplib.error_reply(resp)
        if self.listener is not None:
            conn, _ = self.listener.accept()
        else:
            conn = self.data
            self.data = None
        conn.settimeout(IO_TIMEOUT)
        if TLS is not None:
            # The FTP client is the TLS client of every data connection.
            conn = self.ftp.context.wrap_socket(conn, server_hostname=self.ftp.host)
        digest = hashlib.sha256()
        total = 0
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except ssl.SSLEOFError:
                    break
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
        self.reset()
        self.ftp.voidresp()
        return "%d %s" % (total, digest.hexdigest())

    def quit(self):
        self.reset()
        try:
            self.ftp.quit()
        except (OSError, ftplib.Error):
            self.ftp.close()


def download(host, port, user, password, path, mode, trust_pasv=False):
    session = Session(host, port, user, password, trust_pasv)
    if mode == "pasv":
        session.pasv()
    elif mode == "epsv":
        session.epsv()
    elif mode in ("port", "eprt"):
        session.active(mode == "eprt")
    else:
        raise SystemExit("unknown mode %r" % mode)
    print(session.retr(path), flush=True)
    session.quit()


def long_session(host, port, user, password, path, rounds, option):
    ftp = new_ftp()
    ftp.trust_server_pasv_ipv4_address = option == "trust-pasv"
    transfers = 0
    try:
        ftp.connect(host, port)
        login(ftp, user, password)
        ftp.set_pasv(option != "active")
        first = None
        for i in range(rounds):
            digest = hashlib.sha256()
            ftp.retrbinary("RETR " + path, digest.update)
            if first is None:
                first = digest.hexdigest()
            elif digest.hexdigest() != first:
                raise RuntimeError("round %d: %s changed" % (i, path))
            listing = []
            ftp.retrlines("LIST", listing.append)
            if not listing:
                raise RuntimeError("round %d: empty listing" % i)
            blob = os.urandom(4096 + i * 517)
            name = "upload/long-%d-%d.bin" % (os.getpid(), i)
            ftp.storbinary("STOR " + name, io.BytesIO(blob))
            back = io.BytesIO()
            ftp.retrbinary("RETR " + name, back.write)
            if back.getvalue() != blob:
                raise RuntimeError("round %d: %s came back different" % (i, name))
            transfers += 4
        ftp.quit()
    except (OSError, ftplib.Error, RuntimeError, EOFError) as e:
        print("err after %d transfers: %s: %s" % (transfers, type(e).__name__, e), flush=True)
        return 1
    print("ok %d" % transfers, flush=True)
    return 0


def stdin_lines():
    """Yield stdin lines; stop at EOF or after IDLE_TIMEOUT without input."""
    fd = sys.stdin.fileno()
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode().strip()
        ready, _, _ = select.select([fd], [], [], IDLE_TIMEOUT)
        if not ready:
            return
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        buf += chunk


def session_loop(host, port, user, password):
    try:
        session = Session(host, port, user, password)
    except (OSError, ftplib.Error) as e:
        print("err login: %s" % e, flush=True)
        return 1
    print("ready", flush=True)
    for line in stdin_lines():
        cmd, _, arg = line.partition(" ")
        try:
            if cmd == "pasv":
                reply = "ok %d" % session.pasv()
            elif cmd == "epsv":
                reply = "ok %d" % session.epsv()
            elif cmd == "connect":
                session.connect_data()
                reply = "ok"
            elif cmd == "port":
                reply = "ok %d" % session.active(False)
            elif cmd == "eprt":
                reply = "ok %d" % session.active(True)
            elif cmd == "retr":
                reply = "ok " + session.retr(arg)
            elif cmd == "quit":
                session.quit()
                print("ok", flush=True)
                return 0
            else:
                reply = "err unknown command %r" % cmd
        except (OSError, ftplib.Error, RuntimeError, EOFError) as e:
            reply = "err %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
        print(reply, flush=True)
    session.quit()
    return 0


def echo_server(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # "::" also accepts IPv4 (v4-mapped).
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind((host, port))
    listener.listen(16)
    print("listening", flush=True)

    def serve(conn):
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                conn.sendall(chunk)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def echo_client(host, port, timeout):
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        print("err connect: %s" % e, flush=True)
        return 1
    sock.settimeout(timeout)
    reader = sock.makefile("rb")
    print("connected", flush=True)
    for line in stdin_lines():
        try:
            sock.sendall(line.encode() + b"\n")
            back = reader.readline()
            if not back:
                print("err connection closed", flush=True)
                continue
            print("echo " + back.decode().rstrip("\n"), flush=True)
        except OSError as e:
            print("err %s: %s" % (type(e).__name__, e), flush=True)
    sock.close()
    return 0


def list_rounds(host, port, user, password, rounds):
    """A control-heavy session for the benchmark: `rounds` x (PASV + LIST)
    on one session; prints "ok SECONDS" for the rounds alone."""
    ftp = new_ftp()
    try:
        ftp.connect(host, port)
        login(ftp, user, password)
        ftp.set_pasv(True)
        start = time.perf_counter()
        for i in range(rounds):
            listing = []
            ftp.retrlines("LIST", listing.append)
            if not listing:
                raise RuntimeError("round %d: empty listing" % i)
        elapsed = time.perf_counter() - start
        ftp.quit()
    except (OSError, ftplib.Error, RuntimeError, EOFError) as e:
        print("err %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    print("ok %.6f" % elapsed, flush=True)
    return 0


def tls_calls(calls, cert, key):
    """TLS calls for the benchmark: a client and a server TLS object in
    this one thread, joined by memory BIOs (no sockets, no thread switches:
    what is timed is the calls); `calls` round trips of 8 bytes (each: two
    SSL_write_ex, two SSL_read_ex); prints "ok NS" per round trip."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)

    def pump():
        s_in.write(c_out.read())
        c_in.write(s_out.read())

    done = set()
    for _ in range(100):
        for name, end in (("client", client), ("server", server)):
            if name not in done:
                try:
                    end.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
        pump()
        if len(done) == 2:
            break
    else:
        raise RuntimeError("TLS handshake over memory BIOs did not finish")
    data = b"12345678"
    start = time.perf_counter_ns()
    for _ in range(calls):
        client.write(data)
        s_in.write(c_out.read())
        server.read(8)
        server.write(data)
        c_in.write(s_out.read())
        client.read(8)
    elapsed = time.perf_counter_ns() - start
    print("ok %d" % (elapsed // calls), flush=True)
    return 0


def main(argv):
    global TLS
    if argv and argv[0].startswith("--tls="):
        TLS = argv[0][len("--tls="):]
        if TLS not in ("explicit", "implicit"):
            raise SystemExit("unknown TLS mode %r" % TLS)
        argv = argv[1:]
    cmd, args = argv[0], argv[1:]
    if cmd == "banner":
        return banner(args[0], int(args[1]), float(args[2]))
    if cmd == "connect":
        print(connect(args[0], int(args[1]), float(args[2])), flush=True)
        return 0
    if cmd == "download":
        if args[6:] not in ([], ["trust-pasv"]):
            raise SystemExit("unknown download option %r" % args[6:])
        download(args[0], int(args[1]), args[2], args[3], args[4], args[5], args[6:] == ["trust-pasv"])
        return 0
    if cmd == "long-session":
        if args[6:] not in ([], ["trust-pasv"], ["active"]):
            raise SystemExit("unknown long-session option %r" % args[6:])
        option = args[6] if args[6:] else None
        return long_session(args[0], int(args[1]), args[2], args[3], args[4], int(args[5]), option)
    if cmd == "list-rounds":
        return list_rounds(args[0], int(args[1]), args[2], args[3], int(args[4]))
    if cmd == "tls-calls":
        return tls_calls(int(args[0]), args[1], args[2])
    if cmd == "session":
        return session_loop(args[0], int(args[1]), args[2], args[3])
    if cmd == "echo-server":
        return echo_server(args[0], int(args[1]))
    if cmd == "echo-client":
        return echo_client(args[0], int(args[1]), float(args[2]))
    raise SystemExit("unknown subcommand %r" % cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
