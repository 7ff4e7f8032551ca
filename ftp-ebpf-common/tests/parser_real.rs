//! Real command and reply lines from FTP servers and clients (each row cites
//! where its text comes from), fed whole and split at every byte boundary, plus
//! framing behaviour: multi-line replies, pipelining, bare LF, resync, Telnet IAC.

mod common;

use common::{cmd, cmd_ep, epsv_ok, pasv_ok, refused, reply, run};
use ftp_ebpf_common::parser::{
    Direction::{self, ClientToServer as C2S, ServerToClient as S2C},
    LineKind, LineParser, ParsedLine, RefuseReason, Verb, feed_all,
};

/// `(source, direction, bytes, expected completions)`.
type Row = (&'static str, Direction, &'static [u8], Vec<ParsedLine>);

fn servers() -> Vec<Row> {
    let v6_227 = [0u8, 0, 0, 0];
    vec![
        // vsftpd 3.0.3 postlogin.c handle_pasv: "Entering Passive Mode (" ... ")."
        ("vsftpd", S2C, b"227 Entering Passive Mode (192,168,1,2,195,80).\r\n", vec![pasv_ok([192, 168, 1, 2], 50000)]),
        // vsftpd postlogin.c handle_pasv, IPv6 control connection without a v4 address: "0,0,0,0".
        ("vsftpd", S2C, b"227 Entering Passive Mode (0,0,0,0,195,80).\r\n", vec![pasv_ok(v6_227, 50000)]),
        // vsftpd postlogin.c handle_pasv (is_epsv): "Entering Extended Passive Mode (|||" port "|)".
        ("vsftpd", S2C, b"229 Entering Extended Passive Mode (|||50000|)\r\n", vec![epsv_ok(50000)]),
        // vsftpd prelogin.c: FTP_GREET "(vsFTPd " VSF_VERSION ")".
        ("vsftpd", S2C, b"220 (vsFTPd 3.0.3)\r\n", vec![reply(220)]),
        // vsftpd postlogin.c handle_port / handle_eprt / handle_pasv (EPSV ALL), ssl.c (AUTH).
        ("vsftpd", S2C, b"200 PORT command successful. Consider using PASV.\r\n", vec![reply(200)]),
        ("vsftpd", S2C, b"200 EPRT command successful. Consider using EPSV.\r\n", vec![reply(200)]),
        ("vsftpd", S2C, b"200 EPSV ALL ok.\r\n", vec![reply(200)]),
        ("vsftpd", S2C, b"234 Proceed with negotiation.\r\n", vec![reply(234)]),
        ("vsftpd", S2C, b"200 Switching to Binary mode.\r\n", vec![reply(200)]),
        // vsftpd features.c handle_feat: "211-Features:", raw " EPRT\r\n" ..., "211 End".
        ("vsftpd", S2C, b"211-Features:\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n PBSZ\r\n PROT\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n", vec![reply(211)]),
        // pure-ftpd src/ftpd.c doport/dopasv: "Entering Passive Mode (%lu,%lu,%lu,%lu,%u,%u)".
        ("pure-ftpd", S2C, b"227 Entering Passive Mode (10,0,0,5,117,49)\r\n", vec![pasv_ok([10, 0, 0, 5], 30001)]),
        // pure-ftpd src/ftpd.c: "Extended Passive mode OK (|||%u|)".
        ("pure-ftpd", S2C, b"229 Extended Passive mode OK (|||30001|)\r\n", vec![epsv_ok(30001)]),
        // pure-ftpd src/ftpd.c banner (MSG_WELCOME_TO, MSG_NB_USERS, MSG_WELCOME_TIME, MSG_IPV6_OK,
        // MSG_INFO_IDLE_M in messages_en.h); transcript in victorfu/docker-ftpserver README.md.
        ("pure-ftpd", S2C, b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n220-You are user number 1 of 50 allowed.\r\n220-Local time is now 18:58. Server port: 21.\r\n220-IPv6 connections are also welcome on this server.\r\n220 You will be disconnected after 15 minutes of inactivity.\r\n", vec![reply(220)]),
        // pure-ftpd src/ftpd.c doquit: MSG_GOODBYE then MSG_LOGOUT ("Logout.").
        ("pure-ftpd", S2C, b"221-Goodbye. You uploaded 0 and downloaded 0 kbytes.\r\n221 Logout.\r\n", vec![reply(221)]),
        // pure-ftpd src/ftp_parser.c: addreply_noformat(234, "AUTH TLS OK.").
        ("pure-ftpd", S2C, b"234 AUTH TLS OK.\r\n", vec![reply(234)]),
        // pure-ftpd transcript, victorfu/docker-ftpserver README.md: "226-Options: -l " / "226 0 matches total".
        ("pure-ftpd", S2C, b"226-Options: -l \r\n226 0 matches total\r\n", vec![reply(226)]),
        // proftpd modules/mod_core.c core_pasv: "Entering Passive Mode (%s,%u,%u)." (not localised).
        ("proftpd", S2C, b"227 Entering Passive Mode (192,168,0,10,156,64).\r\n", vec![pasv_ok([192, 168, 0, 10], 40000)]),
        // proftpd modules/mod_core.c core_epsv: "Entering Extended Passive Mode (||%s|%u|)" with addrstr "".
        ("proftpd", S2C, b"229 Entering Extended Passive Mode (|||40000|)\r\n", vec![epsv_ok(40000)]),
        // proftpd src/session.c: "ProFTPD Server (%s) [%s]".
        ("proftpd", S2C, b"220 ProFTPD Server (ProFTPD Default Installation) [192.168.0.10]\r\n", vec![reply(220)]),
        // proftpd modules/mod_core.c core_epsv ALL; contrib/mod_tls.c "AUTH %s successful".
        ("proftpd", S2C, b"200 EPSV ALL command successful\r\n", vec![reply(200)]),
        ("proftpd", S2C, b"234 AUTH TLS successful\r\n", vec![reply(234)]),
        // pyftpdlib handlers/ftp/dispatchers.py: "227 Entering passive mode (%s,%d,%d)."
        ("pyftpdlib", S2C, b"227 Entering passive mode (127,0,0,1,204,173).\r\n", vec![pasv_ok([127, 0, 0, 1], 52397)]),
        // pyftpdlib handlers/ftp/dispatchers.py: "229 Entering extended passive mode (|||{port}|)."
        ("pyftpdlib", S2C, b"229 Entering extended passive mode (|||52397|).\r\n", vec![epsv_ok(52397)]),
        // pyftpdlib handlers/ftp/control.py handle(): banner > 75 chars is "220-{banner}" then "220 ".
        ("pyftpdlib", S2C, b"220-pyftpdlib 2.0.0 ready. Welcome to this server, which has a rather long banner.\r\n220 \r\n", vec![reply(220)]),
        // pyftpdlib handlers/ftp/control.py ftp_FEAT: "211-Features supported:" ... "211 End FEAT."
        ("pyftpdlib", S2C, b"211-Features supported:\r\n EPRT\r\n EPSV\r\n MDTM\r\n MLST type*;perm*;size*;modify*;unique*;unix.mode;unix.uid;unix.gid;\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End FEAT.\r\n", vec![reply(211)]),
        // pyftpdlib handlers/ftps/control.py: "234 AUTH {arg} successful."
        ("pyftpdlib", S2C, b"234 AUTH TLS successful.\r\n", vec![reply(234)]),
        // FileZilla Server 0.9.x source/ControlSocket.cpp: "227 Entering Passive Mode (%s,%d,%d)".
        ("FileZilla Server", S2C, b"227 Entering Passive Mode (192,168,1,20,19,137)\r\n", vec![pasv_ok([192, 168, 1, 20], 5001)]),
        // FileZilla Server source/ControlSocket.cpp, reply to the mangled "P@SW" command.
        ("FileZilla Server", S2C, b"227 Warning: Router with P@SW bug detected. Entering Passive Mode (192,168,1,20,19,137)\r\n", vec![pasv_ok([192, 168, 1, 20], 5001)]),
        // FileZilla Server source/ControlSocket.cpp: "229 Entering Extended Passive Mode (|||%d|)".
        ("FileZilla Server", S2C, b"229 Entering Extended Passive Mode (|||5001|)\r\n", vec![epsv_ok(5001)]),
        ("FileZilla Server", S2C, b"200 Port command successful\r\n", vec![reply(200)]),
        ("FileZilla Server", S2C, b"200 Type set to I\r\n", vec![reply(200)]),
        // IIS: captured sessions ("220 Microsoft FTP Service" ... "227 Entering Passive Mode
        // (192,168,253,245,192,211)."), CTF write-up "The first strike"; HTB Netmon write-up for 229.
        ("IIS", S2C, b"220 Microsoft FTP Service\r\n", vec![reply(220)]),
        ("IIS", S2C, b"200 OPTS UTF8 command successful - UTF8 encoding now ON.\r\n", vec![reply(200)]),
        ("IIS", S2C, b"227 Entering Passive Mode (192,168,253,245,192,211).\r\n", vec![pasv_ok([192, 168, 253, 245], 49363)]),
        ("IIS", S2C, b"229 Entering Extended Passive Mode (|||49403|)\r\n", vec![epsv_ok(49403)]),
        ("IIS", S2C, b"125 Data connection already open; Transfer starting.\r\n", vec![reply(125)]),
        // IIS at ftp.microsoft.com, multi-line 230 quoted from a client log in a 2007 forum post.
        ("IIS", S2C, b"230-Welcome to FTP.MICROSOFT.COM. Also visit http://www.microsoft.com/downloads.\r\n230 Anonymous user logged in.\r\n", vec![reply(230)]),
        // Serv-U banners: FluentFTP ServUServer.cs ("v5.0 for WinSock ready."), WinSCP FtpFileSystem.cpp
        // ("v15.1 ready..."); CSID reply from Greenbone gb_solarwinds_serv-u_ftp_detect.nasl.
        ("Serv-U", S2C, b"220 Serv-U FTP Server v5.0 for WinSock ready.\r\n", vec![reply(220)]),
        ("Serv-U", S2C, b"220 Serv-U FTP Server v15.1 ready...\r\n", vec![reply(220)]),
        ("Serv-U", S2C, b"230 User logged in, proceed.\r\n", vec![reply(230)]),
        ("Serv-U", S2C, b"200 Name=Serv-U; Version=15.0.0.0; OS=Windows Server 2012; OSVer=6.2.9200; CaseSensitive=0;\r\n", vec![reply(200)]),
        // curl tests/ftpserver.pl: "229 Entering Passive Mode (|||%d|)"; tests/data/test1233 port 1.
        ("curl test server", S2C, b"229 Entering Passive Mode (|||1|)\r\n", vec![epsv_ok(1)]),
        // RFC 1123 4.1.2.6 / squid FtpServer.cc comment: the "227 =a,b,c,d,p1,p2" form.
        ("RFC 1123", S2C, b"227 =192,168,1,2,19,137\r\n", vec![pasv_ok([192, 168, 1, 2], 5001)]),
        // RFC 959 4.2: a multi-line reply whose inner lines start with other text and numbers.
        ("RFC 959", S2C, b"123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n123 The last line\r\n", vec![reply(123)]),
    ]
}

fn clients() -> Vec<Row> {
    let v6 = |s: [u16; 8]| -> Vec<u8> { s.iter().flat_map(|g| g.to_be_bytes()).collect() };
    let a2001 = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    let a1080 = v6([0x1080, 0, 0, 0, 8, 0x800, 0x200c, 0x417a]);
    let loopback = v6([0, 0, 0, 0, 0, 0, 0, 1]);
    let a85a3 = v6([0x2001, 0xdb8, 0x85a3, 0, 0, 0x8a2e, 0x370, 0x7334]);
    let leak = |v: Vec<u8>| -> &'static [u8] { v.leak() };
    vec![
        // curl lib/ftp.c: mode[] = { "EPSV", "PASV" }, "%s |%d|%s|%hu|" for EPRT, "PORT %s", "AUTH %s".
        ("curl", C2S, b"EPSV\r\n", vec![cmd(Verb::Epsv)]),
        ("curl", C2S, b"PASV\r\n", vec![cmd(Verb::Pasv)]),
        (
            "curl",
            C2S,
            b"EPRT |1|192.168.1.2|50000|\r\n",
            vec![cmd_ep(Verb::Eprt, 4, &[192, 168, 1, 2], 50000)],
        ),
        (
            "curl",
            C2S,
            b"EPRT |2|2001:db8::1|50000|\r\n",
            vec![cmd_ep(Verb::Eprt, 6, leak(a2001.clone()), 50000)],
        ),
        (
            "curl",
            C2S,
            b"PORT 192,168,1,2,195,80\r\n",
            vec![cmd_ep(Verb::Port, 4, &[192, 168, 1, 2], 50000)],
        ),
        ("curl", C2S, b"AUTH SSL\r\n", vec![cmd(Verb::AuthTls)]),
        ("curl", C2S, b"AUTH TLS\r\n", vec![cmd(Verb::AuthTls)]),
        // RFC 2428 section 2 examples (quoted in curl lib/ftp.c).
        (
            "RFC 2428",
            C2S,
            b"EPRT |1|132.235.1.2|6275|\r\n",
            vec![cmd_ep(Verb::Eprt, 4, &[132, 235, 1, 2], 6275)],
        ),
        (
            "RFC 2428",
            C2S,
            b"EPRT |2|1080::8:800:200C:417A|5282|\r\n",
            vec![cmd_ep(Verb::Eprt, 6, leak(a1080), 5282)],
        ),
        // lftp src/ftpclass.cc: "PORT %d,%d,%d,%d,%d,%d", encode_eprt "|%d|%s|%d|",
        // SendUrgentCmd("ABOR") after pre_cmd {IAC, IP, IAC, DM}.
        (
            "lftp",
            C2S,
            b"PORT 10,0,0,7,117,49\r\n",
            vec![cmd_ep(Verb::Port, 4, &[10, 0, 0, 7], 30001)],
        ),
        (
            "lftp",
            C2S,
            b"EPRT |2|2001:db8::1|30001|\r\n",
            vec![cmd_ep(Verb::Eprt, 6, leak(a2001), 30001)],
        ),
        (
            "lftp",
            C2S,
            b"\xff\xf4\xff\xf2ABOR\r\n",
            vec![cmd(Verb::Other)],
        ),
        (
            "lftp",
            C2S,
            b"\xff\xf4\xff\xf2PASV\r\n",
            vec![cmd(Verb::Pasv)],
        ),
        // Python Lib/ftplib.py: sendport "PORT " + ','.join(bytes), sendeprt 'EPRT ' + '|'.join(fields),
        // retrbinary voidcmd('TYPE I'), makepasv sendcmd('PASV'), abort 'ABOR' + CRLF.
        (
            "ftplib",
            C2S,
            b"PORT 127,0,0,1,204,173\r\n",
            vec![cmd_ep(Verb::Port, 4, &[127, 0, 0, 1], 52397)],
        ),
        (
            "ftplib",
            C2S,
            b"EPRT |2|::1|52397|\r\n",
            vec![cmd_ep(Verb::Eprt, 6, leak(loopback), 52397)],
        ),
        (
            "ftplib",
            C2S,
            b"TYPE I\r\nPASV\r\n",
            vec![cmd(Verb::Other), cmd(Verb::Pasv)],
        ),
        ("ftplib", C2S, b"ABOR\r\n", vec![cmd(Verb::Other)]),
        // FileZilla src/engine/ftp/logon.cpp "AUTH TLS"; rawtransfer.cpp "EPSV"/"PASV", "EPRT "/"PORT " +
        // transfersocket.cpp "|2|%s|%d|".
        ("FileZilla", C2S, b"AUTH TLS\r\n", vec![cmd(Verb::AuthTls)]),
        (
            "FileZilla",
            C2S,
            b"EPRT |2|2001:db8:85a3::8a2e:370:7334|5001|\r\n",
            vec![cmd_ep(Verb::Eprt, 6, leak(a85a3), 5001)],
        ),
        (
            "FileZilla",
            C2S,
            b"PORT 192,168,1,20,19,137\r\n",
            vec![cmd_ep(Verb::Port, 4, &[192, 168, 1, 20], 5001)],
        ),
        // FileZilla Server source/ControlSocket.cpp: routers mangle "PASV" into "P@SW".
        ("FileZilla Server", C2S, b"P@SW\r\n", vec![cmd(Verb::Other)]),
        // vsftpd postlogin.c handle_pasv: str_upper(arg) == "ALL"; argval 1 or 2.
        ("vsftpd", C2S, b"EPSV ALL\r\n", vec![cmd(Verb::EpsvAll)]),
        ("vsftpd", C2S, b"epsv all\r\n", vec![cmd(Verb::EpsvAll)]),
        ("vsftpd", C2S, b"EPSV 2\r\n", vec![cmd(Verb::Epsv)]),
        ("vsftpd", C2S, b"Epsv 1\r\n", vec![cmd(Verb::Epsv)]),
        // Mixed case verbs and arguments; RFC 4217 AUTH arguments.
        ("RFC 959 5.3", C2S, b"pAsV\r\n", vec![cmd(Verb::Pasv)]),
        (
            "RFC 959 5.3",
            C2S,
            b"port 1,2,3,4,0,21\r\n",
            vec![cmd_ep(Verb::Port, 4, &[1, 2, 3, 4], 21)],
        ),
        ("RFC 4217", C2S, b"auth tls-c\r\n", vec![cmd(Verb::AuthTls)]),
        ("RFC 4217", C2S, b"AUTH TLS-P\r\n", vec![cmd(Verb::AuthTls)]),
        ("RFC 4217", C2S, b"AUTH GSSAPI\r\n", vec![cmd(Verb::Other)]),
    ]
}

fn check(rows: Vec<Row>) {
    for (src, dir, input, want) in rows {
        let whole = run(dir, 0, &[input]);
        assert_eq!(whole, want, "{src}: {:?}", String::from_utf8_lossy(input));
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(dir, 0, &[a, b]), want, "{src}: split at {i}");
            for j in i..=input.len() {
                let (b, c) = input[i..].split_at(j - i);
                assert_eq!(run(dir, 0, &[a, b, c]), want, "{src}: split at {i}, {j}");
            }
        }
    }
}

#[test]
fn server_replies() {
    check(servers());
}

#[test]
fn client_commands() {
    check(clients());
}

/// The same lines with bare LF instead of CRLF: commands still complete (most
/// servers end a command at LF), replies never do (a reply line ends only at
/// CRLF, so that a bare LF a server echoes cannot start a reply; see
/// `parser_reflection.rs`).
#[test]
fn bare_lf() {
    for (src, dir, input, want) in servers().into_iter().chain(clients()) {
        let lf: Vec<u8> = input.iter().copied().filter(|&b| b != b'\r').collect();
        let want = if dir == C2S { want } else { vec![] };
        assert_eq!(
            run(dir, 0, &[&lf]),
            want,
            "{src}: {:?}",
            String::from_utf8_lossy(&lf)
        );
    }
}

/// A whole vsftpd session in one stream: every reply completes once, in order.
#[test]
fn pipelined_session() {
    let replies: &[u8] = b"220 (vsFTPd 3.0.3)\r\n331 Please specify the password.\r\n230 Login successful.\r\n200 Switching to Binary mode.\r\n227 Entering Passive Mode (192,168,1,2,195,80).\r\n150 Opening BINARY mode data connection.\r\n226 Transfer complete.\r\n";
    let got = run(S2C, 0, &[replies]);
    let codes: Vec<u16> = got.iter().map(|l| l.code).collect();
    assert_eq!(codes, [220, 331, 230, 200, 227, 150, 226]);
    assert_eq!(got[4], pasv_ok([192, 168, 1, 2], 50000));
    let commands: &[u8] = b"USER ftp\r\nPASS x\r\nTYPE I\r\nPASV\r\nRETR f\r\n";
    let verbs: Vec<Verb> = run(C2S, 0, &[commands]).iter().map(|l| l.verb).collect();
    assert_eq!(
        verbs,
        [
            Verb::Other,
            Verb::Other,
            Verb::Other,
            Verb::Pasv,
            Verb::Other
        ]
    );
}

#[test]
fn multi_line_227() {
    // The endpoint on the first line of a multi-line 227 counts.
    let first = b"227-Entering Passive Mode (192,168,1,2,195,80)\r\n227 OK\r\n";
    assert_eq!(run(S2C, 0, &[first]), [pasv_ok([192, 168, 1, 2], 50000)]);
    // Inner lines may start with other digits; only `227` lines are scanned; the
    // 2-number run "v2 1,2" is provisional and loses to the valid run.
    let inner = b"227-Server v2 says 1,2\r\n150 not the end\r\n1,2,3,4,5,6 is not scanned\r\n227 Entering Passive Mode (10,0,0,1,4,1)\r\n";
    assert_eq!(run(S2C, 0, &[inner]), [pasv_ok([10, 0, 0, 1], 1025)]);
    // The first valid run wins.
    let two = b"227-Entering Passive Mode (1,2,3,4,5,6)\r\n227 Or (7,8,9,10,11,12)\r\n";
    assert_eq!(run(S2C, 0, &[two]), [pasv_ok([1, 2, 3, 4], 1286)]);
    // Nothing valid: the first malformed run explains it.
    let bad = b"227-Entering Passive Mode (1,2,3,4,5)\r\n227 (1,2,3,4,5,6,7)\r\n";
    assert_eq!(
        run(S2C, 0, &[bad]),
        [refused(reply(227), RefuseReason::MissingFields)]
    );
}

#[test]
fn multi_line_ends_only_on_same_code_and_space() {
    let got = run(
        S2C,
        0,
        &[b"220-a\r\n221 b\r\n220-c\r\n220\r\n220 end\r\n200 next\r\n"],
    );
    assert_eq!(got, [reply(220), reply(200)]);
}

#[test]
fn lines_that_are_not_replies_are_ignored() {
    let got = run(
        S2C,
        0,
        &[b"hello\r\n22\r\n2270 x\r\n\r\n099 x\r\n600 x\r\n220 ok\r\n"],
    );
    assert_eq!(got, [reply(220)]);
    // `NNN` alone is a complete single-line reply.
    assert_eq!(run(S2C, 0, &[b"200\r\n"]), [reply(200)]);
}

#[test]
fn lone_cr_is_an_ordinary_byte() {
    // The CR makes the PORT argument malformed; it does not end the line.
    let got = run(C2S, 0, &[b"PORT 1,2,3,4,5,6\rX\r\n"]);
    assert_eq!(got, [refused(cmd(Verb::Port), RefuseReason::BadSyntax)]);
    // Only the CR right before the LF is dropped: the verb here is "PASV\r".
    let got = run(C2S, 0, &[b"PASV\r\r\n"]);
    assert_eq!(got, [cmd(Verb::Other)]);
    // ...and a CR at the end of one piece, LF at the start of the next, is CRLF.
    assert_eq!(
        run(C2S, 0, &[b"PASV\r", b"\nEPSV\r\n"]),
        [cmd(Verb::Pasv), cmd(Verb::Epsv)]
    );
}

#[test]
fn too_long_lines_still_complete() {
    let mut long = b"PORT 1,2,3,4,5,6".to_vec();
    long.extend(std::iter::repeat_n(b' ', 600));
    long.extend(b"\r\nPASV\r\n");
    let got = run(C2S, 0, &[&long]);
    assert_eq!(
        got,
        [
            refused(cmd(Verb::Port), RefuseReason::LineTooLong),
            cmd(Verb::Pasv)
        ]
    );
    // Exactly `max_line` bytes is fine, one more is too long.
    let line = b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n";
    let n = u16::try_from(line.len() - 2).unwrap();
    assert_eq!(run(S2C, n, &[line]), [pasv_ok([1, 2, 3, 4], 1286)]);
    assert_eq!(
        run(S2C, n - 1, &[line]),
        [refused(reply(227), RefuseReason::LineTooLong)]
    );
    // A long text line inside a multi-line 227 taints the reply; other codes do not care.
    let text = format!("227-x\r\n{}\r\n227 (1,2,3,4,5,6)\r\n", "y".repeat(600));
    assert_eq!(
        run(S2C, 0, &[text.as_bytes()]),
        [refused(reply(227), RefuseReason::LineTooLong)]
    );
    let banner = format!("220-{}\r\n220 ok\r\n", "y".repeat(70000));
    assert_eq!(run(S2C, 0, &[banner.as_bytes()]), [reply(220)]);
}

#[test]
fn resync_drops_the_current_line() {
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"PAS", C2S, 0, |l| got.push(*l));
    p.resync();
    assert_eq!(p.parsed().kind, LineKind::None);
    feed_all(&mut p, b"V\r\nEPSV\r\n", C2S, 0, |l| got.push(*l));
    assert_eq!(got, [cmd(Verb::Epsv)]);

    // Outside a reply: a 227 cut by a gap is gone.
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"227 Entering Pas", S2C, 0, |l| got.push(*l));
    p.resync();
    feed_all(
        &mut p,
        b"sive Mode (1,2,3,4,5,6)\r\n150 ok\r\n",
        S2C,
        0,
        |l| got.push(*l),
    );
    assert_eq!(got, [reply(150)]);
}

#[test]
fn resync_inside_a_multi_line_reply_keeps_the_reply() {
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"220-hello\r\n220-wor", S2C, 0, |l| got.push(*l));
    p.resync();
    feed_all(&mut p, b"ld\r\n220 end\r\n230 next\r\n", S2C, 0, |l| {
        got.push(*l)
    });
    assert_eq!(got, [reply(220), reply(230)]);

    // What was found before the gap is kept.
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(
        &mut p,
        b"227-Entering Passive Mode (1,2,3,4,5,6)\r\n227-mo",
        S2C,
        0,
        |l| got.push(*l),
    );
    p.resync();
    feed_all(&mut p, b"re\r\n227 done\r\n", S2C, 0, |l| got.push(*l));
    assert_eq!(got, [pasv_ok([1, 2, 3, 4], 1286)]);
}

#[test]
fn iac_only_skipped_before_the_verb() {
    // IAC WILL/WONT/DO/DONT carry an option byte.
    assert_eq!(run(C2S, 0, &[b"\xff\xfb\x01PASV\r\n"]), [cmd(Verb::Pasv)]);
    // An IAC after the verb started is part of the verb.
    assert_eq!(run(C2S, 0, &[b"PA\xff\xf4SV\r\n"]), [cmd(Verb::Other)]);
    // An empty line is no command: servers (vsftpd) do not answer it, and
    // counting it would pair later replies with the wrong commands.
    assert_eq!(run(C2S, 0, &[b"\r\n\n"]), []);
    assert_eq!(run(C2S, 0, &[b"\r\nPASV\r\n"]), [cmd(Verb::Pasv)]);
}

#[test]
fn parsed_is_cleared_after_the_next_byte() {
    let mut p = LineParser::new();
    assert!(!p.feed(b'P', C2S, 0));
    for &b in b"ORT 1,2,3,4,5,6\r" {
        assert!(!p.feed(b, C2S, 0));
    }
    assert!(p.feed(b'\n', C2S, 0));
    assert_eq!(*p.parsed(), cmd_ep(Verb::Port, 4, &[1, 2, 3, 4], 1286));
    assert!(!p.feed(b'P', C2S, 0));
    assert_eq!(p.parsed().kind, LineKind::None);
}

#[test]
fn new_is_the_all_zero_default_and_small() {
    let fresh = format!("{:?}", LineParser::new());
    assert_eq!(fresh, format!("{:?}", LineParser::default()));
    assert!(std::mem::size_of::<LineParser>() <= 96);
}

/// `restart` (the local end acknowledged bytes ftpct never saw): the partial
/// line is dropped and the very next byte starts a line, where `resync`
/// would skip to the next line end.
#[test]
fn restart_takes_the_next_byte_as_a_line_start() {
    let mut p = LineParser::new();
    let mut out = Vec::new();
    feed_all(&mut p, b"NOOP", C2S, 0, |l| out.push(*l));
    p.restart();
    feed_all(&mut p, b"PASV\r\n", C2S, 0, |l| out.push(*l));
    assert_eq!(out, vec![cmd(Verb::Pasv)]);

    let mut p = LineParser::new();
    feed_all(&mut p, b"NOOP", C2S, 0, |_| {});
    p.resync();
    let mut lines = 0;
    feed_all(&mut p, b"PASV\r\n", C2S, 0, |_| lines += 1);
    assert_eq!(lines, 0, "resync skips to the next line end");
}
