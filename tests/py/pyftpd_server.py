"""pyftpdlib server for the ftpct test lab.

Usage: pyftpd_server.py ROOT PORT PASV_LO PASV_HI [MASQUERADE_ADDRESS]

Serves ROOT to anonymous users with full write permission on one
dual-stack socket ("::" with IPV6_V6ONLY off), passive ports PASV_LO..PASV_HI;
227 replies name MASQUERADE_ADDRESS if given (as behind a 1:1 NAT).
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
    root, port, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    authorizer = DummyAuthorizer()
    with warnings.catch_warnings():
        # pyftpdlib warns about write permissions for anonymous users.
        warnings.simplefilter("ignore", RuntimeWarning)
        authorizer.add_anonymous(root, perm="elradfmwMT")

    class Handler(FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.passive_ports = list(range(lo, hi + 1))
    Handler.permit_foreign_addresses = False
    if len(sys.argv) > 5:
        Handler.masquerade_address = sys.argv[5]

    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(16)
    server = FTPServer(sock, Handler)
    server.serve_forever(timeout=1.0)


if __name__ == "__main__":
    main()
