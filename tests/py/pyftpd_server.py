"""pyftpdlib server for the ftpct test lab.

Usage: pyftpd_server.py [--tls=CERT,KEY] ROOT PORT PASV_LO PASV_HI
                        [MASQUERADE_ADDRESS]

Serves ROOT to anonymous users with full write permission on one
dual-stack socket ("::" with IPV6_V6ONLY off), passive ports PASV_LO..PASV_HI;
227 replies name MASQUERADE_ADDRESS if given (as behind a 1:1 NAT).
With --tls, explicit FTPS (AUTH TLS) with certificate CERT and key KEY is
required for logins and data connections (TLS_FTPHandler, pyOpenSSL).
Runs in the foreground until killed.
"""

import logging
import socket
import sys
import warnings

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    args = sys.argv[1:]
    tls = None
    if args and args[0].startswith("--tls="):
        tls = args.pop(0)[len("--tls="):].split(",", 1)
    root, port, lo, hi = args[0], int(args[1]), int(args[2]), int(args[3])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    authorizer = DummyAuthorizer()
    with warnings.catch_warnings():
        # pyftpdlib warns about write permissions for anonymous users.
        warnings.simplefilter("ignore", RuntimeWarning)
        authorizer.add_anonymous(root, perm="elradfmwMT")

    if tls is None:
        class Handler(FTPHandler):
            pass
    else:
        from pyftpdlib.handlers import TLS_FTPHandler

        class Handler(TLS_FTPHandler):
            pass

        Handler.certfile, Handler.keyfile = tls
        Handler.tls_control_required = True
        Handler.tls_data_required = True

    Handler.authorizer = authorizer
    Handler.passive_ports = list(range(lo, hi + 1))
    Handler.permit_foreign_addresses = False
    if len(args) > 4:
        Handler.masquerade_address = args[4]

    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(16)
    server = FTPServer(sock, Handler)
    server.serve_forever(timeout=1.0)


if __name__ == "__main__":
    main()
