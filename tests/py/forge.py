"""Packet forging and hostile FTP clients for ftpct's hostile tests.

Run with Debian's /usr/bin/python3 -c (scapy is imported only by the
subcommands that need it). Every socket operation and wait is bounded.

Subcommands:
  send IFACE DSTMAC SPECS_JSON
      Send the TCP segments described by SPECS_JSON (a list of objects) as
      Ethernet frames to DSTMAC on IFACE; print "sent N". Spec fields:
        fam 4|6, src, dst, sport, dport, flags ("S", "A", "R", "PA", ...),
        seq (null: random per packet), ack (default 0), payload (latin-1
        text, default ""), count (default 1), options (true: MSS, SACK,
        timestamps, window scale on the segment), frag (null, or
        {"size": N}: IPv4 fragments of N payload bytes / IPv6 fragments with
        N payload bytes after the first of "first" bytes; "destopt": true
        puts a destination options header after the fragment header).
      With "duration" D in the top-level object {"duration": D, "specs": [...]}
      the list is sent again and again (fresh random sequence numbers) for D
      seconds, a round every "interval" seconds (default 0.01); "started" is
      printed before the first round.
  synflood IFACE DSTMAC DST SRCNET COUNT HOT_LO HOT_HI EVERY SEED
      Send COUNT IPv4 SYNs from random addresses of SRCNET (e.g.
      198.19.128.0/17) and random source ports to DST: every EVERY-th one to
      a random port in HOT_LO..HOT_HI, the others to random ports
      1024-65535. Raw AF_PACKET socket, paced; print "sent N".
  listen HOST PORTSPEC
      Listen on HOST at every port of PORTSPEC ("45000" or "50000-50099"),
      print "listening", then accept connections, read each to its end
      (5 s limit) and print "accepted PEER PORT NBYTES". Runs until killed.
  ftpcmds HOST PORT USER PASS CMD...
      Log in and send each CMD (after a "RETR"/"LIST" also wait for the
      final reply); print one line per command: "CMD => REPLY | REPLY" (or
      "CMD => error ..." and stop if the server closes the session; also
      stop after a 421).
  pasvflood HOST PORT PIPELINED CONNS PER_CONN HOLD
      One logged-in control connection sends PIPELINED "PASV" commands in
      four writes and reads every reply; then CONNS more connections log in
      and each sends PER_CONN PASVs one by one. Prints a JSON summary line
      ({"pipelined_227", "conn_227", "ctrl_ports"}) then holds every
      connection open for HOLD seconds.
  badlines HOST PORT USER PASS FILE
      Send 5000-byte lines on a throwaway connection; then log in, send
      about 200 malformed command lines in odd splits, sync
      with NOOP, then download FILE over PASV on the same connection; print
      a JSON line {"bad_lines", "replies", "len", "sha256"}.
  pasv-after HOST PORT USER PASS RAW_HEX
      Log in, send the bytes RAW_HEX, synchronise with NOOP, send PASV and
      try the announced port for 2 s: print "connected PORT" or
      "timeout PORT".
  connect-from HOST PORT SRCPORT TIMEOUT [TEXT]
      Connect once from local port SRCPORT (SO_REUSEADDR; 21 is fine for
      root); print connected | refused | timeout | error:MSG. Once
      connected, if TEXT is given, send it (latin-1), read until as many
      bytes came back, the peer closed or TIMEOUT passed, and print
      "received JSON_STRING". Then close.
  retr-from HOST PORT USER PASS PATH SRCPORT
      Log in, TYPE I, PASV (EPSV over IPv6), open the data connection from
      local port SRCPORT, RETR PATH to its end; print a JSON line
      {"data_port", "src_port", "len", "sha256", "final"}.
  stor-reset HOST PORT USER PASS REMOTE SRCPORT HOLD
      Log in, TYPE I, PASV (EPSV over IPv6), open the data connection from
      local port SRCPORT (0: any), STOR REMOTE and send 64 KiB; print
      "open DATA_PORT SRC_PORT", wait HOLD seconds with the upload in
      progress, then abort the data connection with a RST (SO_LINGER 0)
      and print "reset"; then print "final REPLY" and quit.
  churn HOST PORT COUNT PARALLEL MAX_SECS SPORT_BASE
      COUNT cycles (at most MAX_SECS seconds), PARALLEL at a time: connect,
      read the first line (the server's greeting), abort with a RST
      (SO_LINGER 0). Cycle N binds local port SPORT_BASE + N (wrapping
      back to SPORT_BASE after 65535), so every cycle is a new 4-tuple; 0
      leaves the port to the kernel (which, for one destination, uses only
      the even ports of its ephemeral range: about 14,000 4-tuples). Prints a JSON line {"cycles", "banners", "errors",
      "secs", "rate"}.
  epsvflood HOST PORT SOURCES CONNS EPSV PARALLEL MAX_SECS
      For each address of SOURCES (comma-separated), CONNS control
      connections from that address, PARALLEL at a time: log in
      anonymously, send EPSV EPSV times (pipelined, four at a time: ftpct
      correlates at most four outstanding commands per connection), read
      every reply, close. Stops starting connections after MAX_SECS.
      Prints a JSON line {"conns", "epsv_229", "other_replies", "errors",
      "first_error", "secs"}.
  pasvconnect HOST PORT USER PASS TOTAL PIPELINE PARALLEL MAX_SECS
      PARALLEL logged-in control connections, together sending TOTAL PASVs
      (at most MAX_SECS seconds): each sends PIPELINE PASVs at once (at
      most 4), reads the 227s and opens a data connection to every announced
      port (2 s each; only the last one listens, the others answer with a
      RST), then closes them. Prints "started", then a JSON line
      {"announced", "connected", "refused", "timeout", "errors", "secs"}.
  ftpserver ROOT PORT PASV_LO PASV_HI TIMEOUT
      pyftpdlib serving ROOT anonymously, accepting PORT/EPRT to any
      address and port, giving up on active connections after TIMEOUT s;
      prints "serving". Runs until killed.
  pipelined HOST PORT USER PASS RAW_HEX
      Log in, send the bytes RAW_HEX in one write (they should end with
      "PASV\r\n"), then read reply lines ended by CRLF only (a bare LF stays
      inside a line): print each as "reply JSON_STRING" until one starts
      with "227", then "pasv PORT" (the port it announces). Then keep the
      session open until killed.
  fakeftp HOST PORT GREETING
      A fake FTP server: listen on HOST:PORT, print "listening"; send each
      connection GREETING + CRLF (nothing if GREETING is empty), then read
      and print "got JSON_STRING" for what arrives, answering nothing,
      until the peer closes (30 s limit). Runs until killed.
  send-hold HOST PORT WAIT TEXT
      Connect, wait up to WAIT seconds for the peer's first bytes (print
      "greeting JSON_STRING"), send TEXT (latin-1) in one write, print
      "sent", then keep the connection open (printing what arrives) until
      killed or 30 s pass.
"""

import errno
import hashlib
import ipaddress
import json
import random
import re
import select
import socket
import struct
import sys
import threading
import time

IO_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# Forged segments (scapy).


def tcp_options():
    return [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)),
            ("NOP", None), ("WScale", 7)]


def build(spec, rnd):
    """The frames (without Ethernet) for one spec, as scapy packets."""
    from scapy.all import IP, IPv6, TCP, Raw, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment

    seq = spec.get("seq")
    seq = rnd.getrandbits(32) if seq is None else seq
    tcp = TCP(sport=spec["sport"], dport=spec["dport"], flags=spec.get("flags", "S"),
              seq=seq, ack=spec.get("ack", 0), window=64240)
    if spec.get("options"):
        tcp.options = tcp_options()
    payload = spec.get("payload", "")
    if payload:
        tcp = tcp / Raw(payload.encode("latin-1"))
    frag = spec.get("frag")
    if spec["fam"] == 4:
        pkt = IP(src=spec["src"], dst=spec["dst"], id=rnd.randrange(1, 65535)) / tcp
        if not frag:
            return [pkt]
        from scapy.all import fragment
        return fragment(IP(bytes(pkt)), fragsize=frag["size"])
    pkt = IPv6(src=spec["src"], dst=spec["dst"]) / tcp
    if not frag:
        return [pkt]
    # Upper-layer bytes with the checksum of the unfragmented packet (the
    # pseudo-header does not depend on extension headers).
    upper = bytes(IPv6(bytes(pkt))[TCP])
    if frag.get("destopt"):
        upper = bytes(IPv6ExtHdrDestOpt(nh=6)) + upper
        first_nh = 60
    else:
        first_nh = 6
    ident = rnd.getrandbits(32)
    first = frag.get("first", frag["size"])
    out = []
    offset = 0
    while offset < len(upper):
        size = first if offset == 0 else frag["size"]
        chunk = upper[offset:offset + size]
        more = 1 if offset + len(chunk) < len(upper) else 0
        out.append(IPv6(src=spec["src"], dst=spec["dst"])
                   / IPv6ExtHdrFragment(nh=first_nh, offset=offset // 8, m=more, id=ident)
                   / Raw(chunk))
        offset += len(chunk)
    return out


def send(iface, dstmac, specs_json):
    from scapy.all import Ether, conf, sendp
    conf.verb = 0
    doc = json.loads(specs_json)
    duration = 0.0
    interval = 0.01
    if isinstance(doc, dict):
        duration = float(doc.get("duration", 0))
        interval = float(doc.get("interval", interval))
        specs = doc["specs"]
    else:
        specs = doc
    rnd = random.Random()
    sock = conf.L2socket(iface=iface)
    total = 0
    deadline = time.monotonic() + duration
    if duration:
        print("started", flush=True)
    try:
        while True:
            frames = []
            for spec in specs:
                for _ in range(int(spec.get("count", 1))):
                    frames.extend(Ether(dst=dstmac) / p for p in build(spec, rnd))
            for f in frames:
                sock.send(f)
            total += len(frames)
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
    finally:
        sock.close()
    print("sent %d" % total, flush=True)


# ---------------------------------------------------------------------------
# A fast spoofed SYN flood (no scapy).


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def synflood(iface, dstmac, dst, srcnet, count, hot_lo, hot_hi, every, seed):
    rnd = random.Random(seed)
    net = ipaddress.ip_network(srcnet)
    base = int(net.network_address)
    hosts = net.num_addresses
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    srcmac = sock.getsockname()[4]
    eth = bytes.fromhex(dstmac.replace(":", "")) + srcmac + b"\x08\x00"
    dst_b = socket.inet_aton(dst)
    frames = []
    for i in range(count):
        src_b = (base + rnd.randrange(1, hosts - 1)).to_bytes(4, "big")
        if every and i % every == 0:
            dport = rnd.randint(hot_lo, hot_hi)
        else:
            dport = rnd.randint(1024, 65535)
        sport = rnd.randint(1024, 65535)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, rnd.getrandbits(32), 0, 5 << 4,
                          0x02, 64240, 0, 0)
        pseudo = src_b + dst_b + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rnd.randrange(65536), 0,
                         64, 6, 0, src_b, dst_b)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        frames.append(eth + ip + tcp)
    sent = 0
    for i, frame in enumerate(frames):
        sock.send(frame)
        sent += 1
        if i % 200 == 199:
            # Pace the flood so no queue on the way (the bridge's backlog,
            # the veth ring) overflows: every SYN must reach the server.
            time.sleep(0.002)
    sock.close()
    print("sent %d" % sent, flush=True)


# ---------------------------------------------------------------------------
# Listeners.


def ports_of(spec):
    if "-" in spec:
        lo, hi = spec.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(p) for p in spec.split(",")]


def bind_when_free(s, host, port, timeout=5.0):
    """Binds, waiting (bounded) while the port is in use: a data port a
    transfer just finished on stays taken until the server's end of that
    connection is closed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.bind((host, port))
            return
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def listen(host, portspec):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listeners = {}
    for port in ports_of(portspec):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        bind_when_free(s, host, port)
        s.listen(4096)
        listeners[s.fileno()] = (s, port)
    print("listening", flush=True)
    lock = threading.Lock()

    def drain(conn, peer, port):
        total = 0
        conn.settimeout(5.0)
        with conn:
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            except OSError:
                pass
        with lock:
            print("accepted %s %d %d" % (peer, port, total), flush=True)

    while True:
        ready, _, _ = select.select(list(listeners), [], [], 1.0)
        for fd in ready:
            s, port = listeners[fd]
            try:
                conn, addr = s.accept()
            except OSError:
                continue
            peer = addr[0]
            if peer.startswith("::ffff:"):
                peer = peer[len("::ffff:"):]
            threading.Thread(target=drain, args=(conn, peer, port), daemon=True).start()


# ---------------------------------------------------------------------------
# Raw FTP control connections.


class Control:
    def __init__(self, host, port, user, password, source=None):
        """Connect (from address SOURCE if given), read the greeting, log in."""
        src = None if source is None else (source, 0)
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT,
                                             source_address=src)
        self.sock.settimeout(IO_TIMEOUT)
        self.buf = b""
        self.reply()
        self.cmd("USER " + user)
        self.cmd("PASS " + password)

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("control connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("latin-1").rstrip("\r")

    def reply(self):
        """One complete (possibly multi-line) reply."""
        line = self.readline()
        lines = [line]
        if len(line) >= 4 and line[3] == "-":
            code = line[:3]
            while True:
                line = self.readline()
                lines.append(line)
                if line.startswith(code + " "):
                    break
        return " / ".join(lines)

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, text):
        self.send(text.encode("latin-1") + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.sock.close()


def ftpcmds(host, port, user, password, cmds):
    ctl = Control(host, int(port), user, password)
    for c in cmds:
        try:
            r = ctl.cmd(c)
            if c.split(" ")[0].upper() in ("RETR", "LIST", "NLST") and r.startswith("1"):
                r += " | " + ctl.reply()
        except (OSError, EOFError) as e:
            # The server closed the session (e.g. after a 421): stop here.
            print("%s => error %s: %s" % (c, type(e).__name__, e), flush=True)
            break
        print("%s => %s" % (c, r), flush=True)
        if r.startswith("421"):
            # "Service closing control connection".
            break
    ctl.close()


def pasvflood(host, port, pipelined, conns, per_conn, hold):
    port = int(port)
    main = Control(host, port, "anonymous", "flood@example.com")
    writes = 4
    for i in range(writes):
        n = pipelined // writes + (1 if i < pipelined % writes else 0)
        main.send(b"PASV\r\n" * n)
    pipelined_227 = 0
    for _ in range(pipelined):
        if main.reply().startswith("227"):
            pipelined_227 += 1
    ctls = [main]
    conn_227 = 0
    for _ in range(conns):
        ctl = Control(host, port, "anonymous", "flood@example.com")
        ctls.append(ctl)
        for _ in range(per_conn):
            if ctl.cmd("PASV").startswith("227"):
                conn_227 += 1
    print(json.dumps({
        "pipelined_227": pipelined_227,
        "conn_227": conn_227,
        "ctrl_ports": [c.sock.getsockname()[1] for c in ctls],
    }), flush=True)
    time.sleep(hold)
    for c in ctls:
        c.close()


def bad_lines():
    """About 200 malformed lines, each a list of pieces sent separately."""
    fixed = [
        ["PORT 999,1,1,1,1,1\r\n"],
        ["PORT 198,18,0,2,256,1\r\n"],
        ["PORT 198,18,0,2,0,0\r\n"],
        ["PORT 1,2,3\r\n"],
        ["PORT 1,2,3,4,5,6,7\r\n"],
        ["PORT ,,,,,\r\n"],
        ["PORT 198,18,0,3,156,64\r\n"],
        ["PORT 198,18,0,2,0,21\r\n"],
        ["PORT 198,18,0,2,0,80\r\n"],
        ["PORT 0000000000000000000000000198,18,0,2,156,64\r\n"],
        ["PORT 198,18,0,2,156," + "9" * 40 + "\r\n"],
        ["PORT -1,18,0,2,156,64\r\n"],
        ["PORT 198.18.0.2.156.64\r\n"],
        ["EPRT |3|x|1|\r\n"],
        ["EPRT |1|999.1.1.1|5000|\r\n"],
        ["EPRT |1|198.18.0.2|70000|\r\n"],
        ["EPRT |1|198.18.0.2|0|\r\n"],
        ["EPRT |1|198.18.0.2|5000\r\n"],
        ["EPRT |1|198.18.0.3|40000|\r\n"],
        ["EPRT |1|198.18.0.2|80|\r\n"],
        ["EPRT |2|::ffff:198.18.0.2|40000|\r\n"],
        ["EPRT |2|::198.18.0.2|40000|\r\n"],
        ["EPRT |2|2001:db8::3|40000|\r\n"],
        ["EPRT |1|198.18.0.2|" + "1" * 30 + "|\r\n"],
        ["EPRT \x01\x01198.18.0.2\x0140000\x01\r\n"],
        ["EPRT ||||\r\n"],
        ["EPRT\r\n"],
        ["PASV garbage\r\n"],
        ["PASV 198,18,0,3,156,64\r\n"],
        ["EPSV 3\r\n"],
        ["EPSV ALL garbage\r\n"],
        ["pAsV x\r\n"],
        ["PO\0RT 198,18,0,2,156,64\r\n"],
        ["\0\0\0\0\r\n"],
        ["NOOP\0PASV\r\n"],
        ["\xff\xf4\xff\xf2PORT 198,18,0,3,1,1\r\n"],
        ["PORT 198,18,0,2,156,64\r", "\r\n"],
        ["PORT 198,18,0,2,156,64\r\r\r\n"],
        [" \r\n"],
        ["227 Entering Passive Mode (198,18,0,1,156,64)\r\n"],
        ["229 Entering Extended Passive Mode (|||40000|)\r\n"],
        ["200 PORT command successful\r\n"],
        ["PO", "RT 198,18,0,3,156,64\r\n"],
        ["EP", "RT |1|198.18", ".0.3|40000|\r\n"],
        ["PORT 198,18,0,2,0", ",79\r\n"],
        ["P", "A", "S", "V", " ", "x", "\r", "\n"],
        ["PORT " + "1," * 1900 + "1\r\n"],
        ["A" * 4000 + "\r\n"],
        ["PORT 198,18,0,2,156,64" + " " * 3900 + "\r\n"],
        ["EPRT |1|" + "9" * 3900 + "|1|\r\n"],
        ["PORT " + "0" * 3000 + "198,18,0,3,156,64\r\n"],
        ["\xc3\xa9\xe2\x82\xac PORT 198,18,0,2,156,64\r\n"],
    ]
    rnd = random.Random(4711)
    lines = list(fixed)
    alphabet = "PORTEPRVSpasv0123456789,.|:| \x00\xff\r"
    while len(lines) < 200:
        kind = rnd.randrange(4)
        if kind == 0:
            nums = [str(rnd.choice([0, 1, 255, 256, 999, 65535, rnd.randrange(100000)]))
                    for _ in range(rnd.randrange(1, 9))]
            text = "PORT " + ",".join(nums)
        elif kind == 1:
            text = "EPRT |%d|%s|%d|" % (rnd.choice([0, 1, 2, 3, 9]),
                                        rnd.choice(["198.18.0.3", "1.2.3", "::1", "x", "",
                                                    "198.18.0.2", "2001:db8::2::1"]),
                                        rnd.choice([0, 21, 1023, 65536, 99999999]))
        elif kind == 2:
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 120)))
            text = text.replace("\r", "")
        else:
            text = rnd.choice(["PASV", "EPSV"]) + " " + "".join(
                rnd.choice("0123456789,|") for _ in range(rnd.randrange(1, 60)))
        line = text + "\r\n"
        cut = rnd.randrange(1, len(line))
        lines.append([line[:cut], line[cut:]] if rnd.randrange(3) == 0 else [line])
    return lines


def overlong_lines():
    """Lines longer than vsftpd accepts (it drops the connection)."""
    return [
        "PORT " + "1," * 2500 + "1\r\n",
        "A" * 5000 + "\r\n",
        "PORT 198,18,0,2,156,64" + " " * 5000 + "\r\n",
        "EPRT |1|" + "9" * 5000 + "|1|\r\n",
    ]


def pasv_after(host, port, user, password, raw_hex):
    """Log in, send RAW_HEX (raw bytes), synchronise with NOOP, send PASV
    and try to open the announced data connection (2 s)."""
    ctl = Control(host, int(port), user, password)
    ctl.send(bytes.fromhex(raw_hex))
    ctl.send(b"NOOP\r\n")
    while not ctl.readline().startswith("200 NOOP"):
        pass
    r = ctl.cmd("PASV")
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r)
    if not r.startswith("227") or not m:
        raise SystemExit("bad PASV reply %r" % r)
    data_port = int(m.group(5)) * 256 + int(m.group(6))
    try:
        socket.create_connection((host, data_port), timeout=2.0).close()
        print("connected %d" % data_port, flush=True)
    except socket.timeout:
        print("timeout %d" % data_port, flush=True)
    ctl.close()


def drain(data):
    """Reads a data connection to its end (and closes it): (sha256, bytes)."""
    digest = hashlib.sha256()
    total = 0
    with data:
        while True:
            chunk = data.recv(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
    return digest, total


def badlines(host, port, user, password, path):
    # First on a throwaway connection: 5000-byte lines, which the server
    # may answer by closing the connection.
    try:
        junk = Control(host, int(port), user, password)
        for line in overlong_lines():
            junk.send(line.encode("latin-1"))
        junk.send(b"NOOP\r\n")
        while not junk.readline().startswith("200 NOOP"):
            pass
        junk.close()
    except (OSError, EOFError):
        pass
    ctl = Control(host, int(port), user, password)
    lines = bad_lines()
    for i, pieces in enumerate(lines):
        for piece in pieces:
            ctl.send(piece.encode("latin-1"))
            if len(pieces) > 1:
                # Separate segments: the parser must carry state across.
                time.sleep(0.005)
        if i % 16 == 15:
            time.sleep(0.01)
    # Synchronise: every reply up to the NOOP's is the junk's.
    ctl.send(b"NOOP\r\n")
    replies = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = ctl.readline()
        replies += 1
        if line.startswith("200 NOOP"):
            break
    ctl.cmd("TYPE I")
    r = ctl.cmd("PASV")
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r)
    if not r.startswith("227") or not m:
        raise SystemExit("bad PASV reply %r" % r)
    data_port = int(m.group(5)) * 256 + int(m.group(6))
    data = socket.create_connection((host, data_port), timeout=IO_TIMEOUT)
    data.settimeout(IO_TIMEOUT)
    r = ctl.cmd("RETR " + path)
    if not r.startswith("1"):
        raise SystemExit("RETR refused: %r" % r)
    digest, total = drain(data)
    final = ctl.reply()
    if not final.startswith("226"):
        raise SystemExit("transfer not complete: %r" % final)
    ctl.close()
    print(json.dumps({"bad_lines": len(lines), "replies": replies, "len": total,
                      "sha256": digest.hexdigest()}), flush=True)


# ---------------------------------------------------------------------------
# Connections from fixed source ports.


def bound_socket(host, sport, timeout):
    """A TCP socket of HOST's family bound to local port SPORT (0: any)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sport)))
    s.settimeout(timeout)
    return s


def connect_from(host, port, sport, timeout, text=None):
    s = bound_socket(host, sport, timeout)
    try:
        try:
            s.connect((host, int(port)))
        except ConnectionRefusedError:
            print("refused", flush=True)
            return
        except socket.timeout:
            print("timeout", flush=True)
            return
        except OSError as e:
            print("error:%s" % e, flush=True)
            return
        print("connected", flush=True)
        if text is None:
            return
        data = text.encode("latin-1")
        s.sendall(data)
        got = b""
        try:
            while len(got) < len(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        print("received " + json.dumps(got.decode("latin-1")), flush=True)
    finally:
        s.close()


def passive_data(ctl, host, sport):
    """PASV (EPSV over IPv6) on CTL, then the data connection from SPORT."""
    if ctl.sock.family == socket.AF_INET:
        r = ctl.cmd("PASV")
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r)
        if not r.startswith("227") or not m:
            raise SystemExit("bad PASV reply %r" % r)
        data_port = int(m.group(5)) * 256 + int(m.group(6))
    else:
        r = ctl.cmd("EPSV")
        m = re.search(r"\(\|\|\|(\d+)\|\)", r)
        if not r.startswith("229") or not m:
            raise SystemExit("bad EPSV reply %r" % r)
        data_port = int(m.group(1))
    data = bound_socket(host, sport, IO_TIMEOUT)
    data.connect((host, data_port))
    return data, data_port


def retr_from(host, port, user, password, path, sport):
    ctl = Control(host, int(port), user, password)
    ctl.cmd("TYPE I")
    data, data_port = passive_data(ctl, host, sport)
    src_port = data.getsockname()[1]
    r = ctl.cmd("RETR " + path)
    if not r.startswith("1"):
        raise SystemExit("RETR refused: %r" % r)
    digest, total = drain(data)
    final = ctl.reply()
    ctl.close()
    print(json.dumps({"data_port": data_port, "src_port": src_port, "len": total,
                      "sha256": digest.hexdigest(), "final": final}), flush=True)


def stor_reset(host, port, user, password, remote, sport, hold):
    ctl = Control(host, int(port), user, password)
    ctl.cmd("TYPE I")
    data, data_port = passive_data(ctl, host, sport)
    r = ctl.cmd("STOR " + remote)
    if not r.startswith("1"):
        raise SystemExit("STOR refused: %r" % r)
    data.sendall(b"x" * 65536)
    print("open %d %d" % (data_port, data.getsockname()[1]), flush=True)
    time.sleep(hold)
    # Linger on, timeout 0: close() aborts the connection with a RST.
    data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    data.close()
    print("reset", flush=True)
    try:
        print("final " + ctl.reply(), flush=True)
    except (OSError, EOFError) as e:
        print("final error %s: %s" % (type(e).__name__, e), flush=True)
    ctl.close()


# ---------------------------------------------------------------------------
# Table exhaustion: connection churn, expectation and flow floods.


def churn(host, port, count, parallel, max_secs, sport_base):
    """COUNT connect / greeting / RST cycles, PARALLEL at a time; cycle N from
    local port SPORT_BASE + N (wrapping at 65535) unless SPORT_BASE is 0."""
    port = int(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    linger = struct.pack("ii", 1, 0)
    lock = threading.Lock()
    tally = {"started": 0, "banners": 0, "errors": 0}
    start = time.monotonic()
    deadline = start + max_secs

    def worker():
        while True:
            with lock:
                n = tally["started"]
                if n >= count or time.monotonic() >= deadline:
                    return
                tally["started"] += 1
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(5.0)
            ok = False
            try:
                if sport_base:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0",
                            sport_base + n % (65536 - sport_base)))
                s.connect((host, port))
                buf = b""
                while b"\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                ok = buf.startswith(b"220")
            except OSError:
                pass
            finally:
                # Linger on, timeout 0: close() aborts with a RST.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                s.close()
            with lock:
                tally["banners" if ok else "errors"] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_secs + 10)
    secs = time.monotonic() - start
    cycles = tally["banners"] + tally["errors"]
    print(json.dumps({"cycles": cycles, "banners": tally["banners"], "errors": tally["errors"],
                      "secs": round(secs, 2), "rate": round(cycles / secs, 1)}), flush=True)


def epsvflood(host, port, sources, conns, epsv, parallel, max_secs):
    """CONNS control connections per source address, EPSV EPSVs each."""
    port = int(port)
    tasks = [src for _ in range(conns) for src in sources]
    lock = threading.Lock()
    tally = {"next": 0, "conns": 0, "epsv_229": 0, "other_replies": 0, "errors": 0,
             "first_error": None}
    start = time.monotonic()
    deadline = start + max_secs

    def one(src):
        ctl = Control(host, port, "anonymous", "flood@example.com", source=src)
        got = other = 0
        try:
            left = epsv
            while left:
                n = min(4, left)
                ctl.send(b"EPSV\r\n" * n)
                for _ in range(n):
                    if ctl.reply().startswith("229"):
                        got += 1
                    else:
                        other += 1
                left -= n
        finally:
            ctl.sock.close()
        return got, other

    def worker():
        while True:
            with lock:
                i = tally["next"]
                if i >= len(tasks) or time.monotonic() >= deadline:
                    return
                tally["next"] += 1
            try:
                got, other = one(tasks[i])
            except (OSError, EOFError) as e:
                with lock:
                    tally["errors"] += 1
                    if tally["first_error"] is None:
                        tally["first_error"] = "%s: %s: %s" % (tasks[i], type(e).__name__, e)
                continue
            with lock:
                tally["conns"] += 1
                tally["epsv_229"] += got
                tally["other_replies"] += other

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_secs + 2 * IO_TIMEOUT)
    del tally["next"]
    tally["secs"] = round(time.monotonic() - start, 2)
    print(json.dumps(tally), flush=True)


def pasvconnect(host, port, user, password, total, pipeline, parallel, max_secs):
    """TOTAL PASVs over PARALLEL connections, each announced port connected to."""
    port = int(port)
    pipeline = max(1, min(4, pipeline))
    lock = threading.Lock()
    tally = {"left": total, "announced": 0, "connected": 0, "refused": 0, "timeout": 0,
             "errors": 0}
    start = time.monotonic()
    deadline = start + max_secs

    def worker():
        try:
            ctl = Control(host, port, user, password)
        except (OSError, EOFError):
            with lock:
                tally["errors"] += 1
            return
        try:
            while True:
                with lock:
                    n = min(pipeline, tally["left"])
                    if n <= 0 or time.monotonic() >= deadline:
                        return
                    tally["left"] -= n
                ctl.send(b"PASV\r\n" * n)
                ports = []
                for _ in range(n):
                    r = ctl.reply()
                    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r)
                    if r.startswith("227") and m:
                        ports.append(int(m.group(5)) * 256 + int(m.group(6)))
                results = []
                for p in ports:
                    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                    s.settimeout(2.0)
                    try:
                        s.connect((host, p))
                        results.append("connected")
                    except ConnectionRefusedError:
                        results.append("refused")
                    except socket.timeout:
                        results.append("timeout")
                    except OSError:
                        results.append("errors")
                    finally:
                        s.close()
                with lock:
                    tally["announced"] += len(ports)
                    for r in results:
                        tally[r] += 1
        except (OSError, EOFError):
            with lock:
                tally["errors"] += 1
        finally:
            ctl.close()

    print("started", flush=True)
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_secs + 2 * IO_TIMEOUT)
    del tally["left"]
    tally["secs"] = round(time.monotonic() - start, 2)
    print(json.dumps(tally), flush=True)


# ---------------------------------------------------------------------------
# Text that ends up in FTP control streams.


def pipelined(host, port, user, password, raw_hex):
    """Log in, send RAW_HEX in one write, print the replies (lines ended by
    CRLF only) up to the first 227 and the port it announces; then hold the
    session open until killed."""
    ctl = Control(host, int(port), user, password)
    ctl.send(bytes.fromhex(raw_hex))
    buf = ctl.buf
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        while b"\r\n" not in buf:
            if time.monotonic() >= deadline:
                raise SystemExit("no 227 within %ss: %r" % (IO_TIMEOUT, buf))
            chunk = ctl.sock.recv(65536)
            if not chunk:
                raise SystemExit("control connection closed: %r" % buf)
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        text = line.decode("latin-1")
        print("reply " + json.dumps(text), flush=True)
        if text.startswith("227"):
            break
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
    if not m:
        raise SystemExit("bad PASV reply %r" % text)
    print("pasv %d" % (int(m.group(5)) * 256 + int(m.group(6))), flush=True)
    while True:
        time.sleep(1)


def fakeftp(host, port, greeting):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, int(port)))
    s.listen(16)
    print("listening", flush=True)
    lock = threading.Lock()

    def serve(conn):
        conn.settimeout(30.0)
        with conn:
            try:
                if greeting:
                    conn.sendall(greeting.encode("latin-1") + b"\r\n")
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    with lock:
                        print("got " + json.dumps(chunk.decode("latin-1")), flush=True)
            except OSError:
                pass

    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def send_hold(host, port, wait, text):
    s = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)
    s.settimeout(wait)
    try:
        first = s.recv(65536)
    except socket.timeout:
        first = b""
    print("greeting " + json.dumps(first.decode("latin-1")), flush=True)
    s.sendall(text.encode("latin-1"))
    print("sent", flush=True)
    s.settimeout(1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        print("received " + json.dumps(chunk.decode("latin-1")), flush=True)
    s.close()


# ---------------------------------------------------------------------------
# A permissive FTP server.


def ftpserver(root, port, lo, hi, timeout):
    """pyftpdlib serving ROOT anonymously on a dual-stack socket, accepting
    PORT/EPRT to any address and port (bounce and privileged ports allowed)
    and giving up on an active data connection after TIMEOUT seconds.

    pyftpdlib connects to a PORT address as soon as it gets the command and
    answers 200 only once connected (425 if it cannot connect)."""
    import logging
    import warnings
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import ActiveDTP, FTPHandler
    from pyftpdlib.servers import FTPServer

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    authorizer = DummyAuthorizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        authorizer.add_anonymous(root, perm="elr")

    class Active(ActiveDTP):
        pass

    Active.timeout = timeout

    class Handler(FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.passive_ports = list(range(lo, hi + 1))
    Handler.permit_foreign_addresses = True
    Handler.permit_privileged_ports = True
    Handler.active_dtp = Active

    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(16)
    server = FTPServer(sock, Handler)
    print("serving", flush=True)
    server.serve_forever(timeout=1.0)


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "send":
        send(args[0], args[1], args[2])
    elif cmd == "synflood":
        synflood(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]),
                 int(args[6]), int(args[7]), int(args[8]))
    elif cmd == "listen":
        listen(args[0], args[1])
    elif cmd == "ftpcmds":
        ftpcmds(args[0], args[1], args[2], args[3], args[4:])
    elif cmd == "pasvflood":
        pasvflood(args[0], args[1], int(args[2]), int(args[3]), int(args[4]),
                  float(args[5]))
    elif cmd == "badlines":
        badlines(args[0], args[1], args[2], args[3], args[4])
    elif cmd == "pasv-after":
        pasv_after(args[0], args[1], args[2], args[3], args[4])
    elif cmd == "connect-from":
        connect_from(args[0], args[1], args[2], float(args[3]),
                     args[4] if len(args) > 4 else None)
    elif cmd == "retr-from":
        retr_from(args[0], args[1], args[2], args[3], args[4], args[5])
    elif cmd == "stor-reset":
        stor_reset(args[0], args[1], args[2], args[3], args[4], args[5], float(args[6]))
    elif cmd == "churn":
        churn(args[0], args[1], int(args[2]), int(args[3]), float(args[4]), int(args[5]))
    elif cmd == "epsvflood":
        epsvflood(args[0], args[1], args[2].split(","), int(args[3]), int(args[4]),
                  int(args[5]), float(args[6]))
    elif cmd == "pasvconnect":
        pasvconnect(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]),
                    int(args[6]), float(args[7]))
    elif cmd == "pipelined":
        pipelined(args[0], args[1], args[2], args[3], args[4])
    elif cmd == "fakeftp":
        fakeftp(args[0], args[1], args[2])
    elif cmd == "send-hold":
        send_hold(args[0], args[1], float(args[2]), args[3])
    elif cmd == "ftpserver":
        ftpserver(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
    else:
        raise SystemExit("unknown subcommand %r" % cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
