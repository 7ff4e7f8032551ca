//! Per-CPU counters, one slot per reason, in the spirit of Cilium's drop-reason
//! metrics: every pass, drop and refusal says why.

use crate::parser::RefuseReason;

macro_rules! counters {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )+) => {
        /// Index into `FTPCT_COUNTERS`.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $( $(#[$doc])* $variant, )+
        }

        impl Counter {
            /// Every counter, in index order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)+];

            /// Stable name shown by `ftpct status` (and in its JSON).
            pub const fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name,)+ }
            }
        }
    };
}

counters! {
    /// Packets seen by the ingress program: not counted by the program but
    /// computed by user space as the sum of `INGRESS_VERDICTS`.
    IngressPackets = "ingress_packets",
    /// Packets seen by the egress program.
    EgressPackets = "egress_packets",
    /// Ingress packets passed because the programs do not handle them (non-IP,
    /// non-TCP, open ports).
    PassedOther = "passed_other",
    /// Ingress packets that could not be parsed (truncated headers) and were passed.
    PassedUnparsed = "passed_unparsed",
    /// Ingress packets to a control port, passed (after parsing).
    PassedControl = "passed_control",
    /// Packets on control connections.
    ControlPackets = "control_packets",
    /// Control segments whose payload went through the parser.
    ControlPayloads = "control_payloads",
    /// Control segments skipped as retransmissions of bytes already parsed.
    ControlRetransmits = "control_retransmits",
    /// Gaps in a control stream (lost or reordered segment): parser resynced.
    ControlGaps = "control_gaps",
    /// Control segments far ahead of the stream (forged or garbage): ignored.
    ControlOutOfWindow = "control_out_of_window",
    /// Control segments longer than the parser reads: the rest was skipped.
    ControlTruncated = "control_truncated",
    /// Control connections that started TLS (no longer parsed).
    ControlTls = "control_tls",
    /// SYNs from the remote end of a known control connection: ignored (only
    /// the local end's handshake sets where a stream is).
    ControlSynIgnored = "control_syn_ignored",
    /// Remote control data ahead of the stream (a lost segment, or forged):
    /// not parsed and not taken as the stream's position; the local end's
    /// acknowledgment moves the stream on if the bytes were real.
    ControlOutOfOrder = "control_out_of_order",
    /// Commands parsed.
    Commands = "commands",
    /// Complete replies parsed.
    Replies = "replies",
    /// Expectations created from `227`.
    ExpectPasv = "expect_created_pasv",
    /// Expectations created from `229`.
    ExpectEpsv = "expect_created_epsv",
    /// Expectations created from `PORT` + `200`.
    ExpectPort = "expect_created_port",
    /// Expectations created from `EPRT` + `200`.
    ExpectEprt = "expect_created_eprt",
    /// Announcements accepted because they named the external address
    /// (`--external-address`) of the connection's local address.
    AnnouncedViaExternal = "announced_via_external",
    /// `227`s rewritten to name the external address (`--nat-rewrite`).
    NatRewritten = "nat_rewritten",
    /// Retransmissions of a rewritten `227`, rewritten again identically.
    NatRewriteRetransmitted = "nat_rewrite_retransmitted",
    /// `227`s not rewritten because the reply began in an earlier segment
    /// (it went out before ftpct knew it; the client sees the local address).
    NatRewriteSplit = "nat_rewrite_split",
    /// `227`s not rewritten because the reply is too long
    /// (`nat::REWRITE_MAX`) or too short to name the external address in
    /// the same length.
    NatRewriteUnfit = "nat_rewrite_unfit",
    /// Refused: malformed number (> 255 or too many digits).
    RefusedNumberTooLarge = "refused_number_too_large",
    /// Refused: port 0.
    RefusedPortZero = "refused_port_zero",
    /// Refused: missing fields.
    RefusedMissingFields = "refused_missing_fields",
    /// Refused: more than six numbers.
    RefusedTooManyNumbers = "refused_too_many_numbers",
    /// Refused: bad syntax.
    RefusedBadSyntax = "refused_bad_syntax",
    /// Refused: line longer than the maximum.
    RefusedLineTooLong = "refused_line_too_long",
    /// Refused: bad or mismatched delimiters.
    RefusedBadDelimiter = "refused_bad_delimiter",
    /// Refused: unknown address family in `EPRT`.
    RefusedBadFamily = "refused_bad_family",
    /// Refused: malformed address in `EPRT`.
    RefusedBadAddress = "refused_bad_address",
    /// Refused: IPv4-mapped or -compatible address in `EPRT |2|`.
    RefusedMappedAddress = "refused_mapped_address",
    /// Refused: port above 65535.
    RefusedPortTooLarge = "refused_port_too_large",
    /// Refused: `227`/`229` without an address.
    RefusedNoAddress = "refused_no_address",
    /// Refused: `227` names an address other than the server's.
    RefusedAddressMismatch = "refused_address_mismatch",
    /// Refused: `PORT`/`EPRT` names an address other than the client's (bounce).
    RefusedBounce = "refused_bounce",
    /// Refused: `PORT`/`EPRT` names a port below 1024.
    RefusedLowPort = "refused_low_port",
    /// Refused: `EPRT` family differs from the control connection's.
    RefusedFamilyMismatch = "refused_family_mismatch",
    /// Refused: `227`/`229` that answers no `PASV`/`EPSV`.
    RefusedUncorrelated = "refused_uncorrelated",
    /// Refused: a local client's `PORT`/`EPRT` on a connection that does not
    /// behave as FTP (no `220` greeting first, or an earlier command still
    /// unanswered).
    RefusedNotFtp = "refused_not_ftp",
    /// Refused: the expectation table is full (even after sweeping).
    RefusedExpectFull = "refused_expect_map_full",
    /// The expectation table was full and swept of expired entries.
    ExpectSwept = "expect_table_swept",
    /// An expectation replaced its control connection's oldest (per-connection cap).
    ExpectReplaced = "expect_replaced_conn_limit",
    /// An expectation withdrawn because the server refused its `PORT`/`EPRT`.
    ExpectWithdrawn = "expect_withdrawn",
    /// Refused: the client address has too many live expectations.
    RefusedClientLimit = "refused_client_limit",
    /// Refused: the client's IPv6 /48 has too many live expectations.
    RefusedSiteLimit = "refused_site_limit",
    /// Inbound SYNs admitted by an expectation.
    SynAdmitted = "syn_admitted",
    /// Inbound SYNs to guarded ports dropped: no expectation.
    SynDropped = "syn_dropped",
    /// Inbound SYNs dropped: the matching expectation had expired.
    SynExpired = "syn_dropped_expired",
    /// Inbound SYNs dropped: a new connection on the 4-tuple of a tracked
    /// flow whose handshake was over, with no expectation of its own.
    SynReused = "syn_dropped_reused",
    /// Inbound non-SYN packets to guarded ports dropped: no tracked flow.
    UntrackedDropped = "untracked_dropped",
    /// Inbound packets to guarded ports passed as part of a tracked flow.
    FlowPackets = "flow_packets",
    /// Outbound connections recorded on egress.
    FlowsOutbound = "flows_outbound",
    /// A flow could not be recorded (flow table update failed).
    FlowMapFull = "flow_map_full",
    /// Flows ended by an in-window RST from the remote end.
    FlowResetRemote = "flow_reset_remote",
    /// SYNs the local host sent to an endpoint a refused `PORT`/`EPRT` named
    /// (FTP bounce through a permissive server): dropped on egress.
    BounceBlocked = "bounce_blocked",
    /// A control connection could not be recorded (control table update failed).
    ControlMapFull = "control_map_full",
    /// A control connection not tracked: its client opened more new ones in an
    /// expectation lifetime than `max_new_sessions_per_client`.
    ControlClientLimit = "control_refused_client_limit",
    /// The control table was full and swept of stale unauthenticated and
    /// idle connections.
    ControlSwept = "control_table_swept",
    /// Inbound packets with odd TCP flags (SYN+FIN, SYN+RST, no flags) dropped.
    BadFlagsDropped = "bad_flags_dropped",
    /// Inbound TCP fragments dropped: they cannot be classified by port.
    FragmentsDropped = "fragments_dropped",
    /// Inbound frames dropped because their headers could hide TCP we cannot
    /// reach (a third VLAN tag, an overlong IPv6 extension chain).
    UnverifiableDropped = "unverifiable_dropped",
    /// Inbound SYNs to `--ftps-range` admitted: their client holds a live
    /// encrypted control connection to the address they connect to.
    SynAdmittedFtpsRange = "syn_admitted_ftps_range",
    /// Expectations nobody used, dropped when the local end closed their
    /// control connection.
    ExpectDroppedControlClosed = "expect_dropped_control_closed",
    /// TLS objects of the local end tied to the encrypted control
    /// connection whose socket they used (FTPS inspection).
    TlsTied = "tls_tied",
    /// TLS reads and writes of an encrypted control connection whose
    /// plaintext went through the parser.
    TlsPlaintext = "tls_plaintext",
    /// TLS calls on a socket of another network namespace: ignored.
    TlsOtherNetns = "tls_other_netns",
    /// TLS calls on a socket of this namespace that is no tracked encrypted
    /// control connection (a data connection, another service): ignored.
    TlsUntracked = "tls_untracked",
    /// TLS plaintext not parsed because another task's probe held this
    /// CPU's scratch memory (it was preempted there): the parser resyncs.
    TlsBusy = "tls_busy",
    /// Audit events sent through the ring buffer.
    EventsSent = "events_sent",
    /// Audit events left out by the rate limits (per source, per CPU).
    EventsSuppressed = "events_suppressed",
    /// Audit events lost because the ring buffer was full (no reader).
    EventsLost = "events_lost",
}

/// The verdicts of the ingress program: each ingress packet increments exactly
/// one of these, so their sum is the number of ingress packets.
pub const INGRESS_VERDICTS: &[Counter] = &[
    Counter::PassedOther,
    Counter::PassedUnparsed,
    Counter::PassedControl,
    Counter::FlowPackets,
    Counter::SynAdmitted,
    Counter::SynAdmittedFtpsRange,
    Counter::SynDropped,
    Counter::SynExpired,
    Counter::SynReused,
    Counter::UntrackedDropped,
    Counter::BadFlagsDropped,
    Counter::FragmentsDropped,
    Counter::UnverifiableDropped,
];

/// Number of counters (entries in `FTPCT_COUNTERS`).
pub const COUNTER_COUNT: u32 = Counter::ALL.len() as u32;

impl Counter {
    /// The counter for a parser refusal.
    #[inline(always)]
    pub fn for_refusal(reason: RefuseReason) -> Counter {
        match reason {
            RefuseReason::None | RefuseReason::BadSyntax => Counter::RefusedBadSyntax,
            RefuseReason::NumberTooLarge => Counter::RefusedNumberTooLarge,
            RefuseReason::PortZero => Counter::RefusedPortZero,
            RefuseReason::MissingFields => Counter::RefusedMissingFields,
            RefuseReason::TooManyNumbers => Counter::RefusedTooManyNumbers,
            RefuseReason::LineTooLong => Counter::RefusedLineTooLong,
            RefuseReason::BadDelimiter => Counter::RefusedBadDelimiter,
            RefuseReason::BadFamily => Counter::RefusedBadFamily,
            RefuseReason::BadAddress => Counter::RefusedBadAddress,
            RefuseReason::MappedAddress => Counter::RefusedMappedAddress,
            RefuseReason::PortTooLarge => Counter::RefusedPortTooLarge,
            RefuseReason::NoAddress => Counter::RefusedNoAddress,
        }
    }
}
