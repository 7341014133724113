//! torrc text for each role. Everything binds, connects and resolves on
//! 127.0.0.1 only, so the network works in a namespace that has only `lo`.

use std::fmt::Write as _;
use std::path::Path;

/// c-tor accepts voting intervals that divide a day and make 24 × interval a
/// whole number of minutes (its test-network hsdir time period).
pub(crate) const VOTING_INTERVAL_SECS: u32 = 20;
const VOTE_DELAY_SECS: u32 = 4;

pub(crate) struct AuthorityLine {
    pub nickname: String,
    pub or_port: u16,
    pub dir_port: u16,
    pub v3ident: String,
    pub rsa_identity: String,
}

pub(crate) fn common(dir: &Path, nickname: &str, authorities: &[AuthorityLine]) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by timb-testnet; a throwaway test network on 127.0.0.1.
TestingTorNetwork 1
DataDirectory {d}
Nickname {nickname}
RunAsDaemon 0
PidFile {d}/pid
__OwningControllerProcess {pid}
Log notice file {d}/notice.log
{info_log}SafeLogging 0
LogTimeGranularity 1
ProtocolWarnings 1
ShutdownWaitLength 0
AssumeReachable 1
PathsNeededToBuildCircuits 0.67
# Loopback circuits build in milliseconds, so a learned timeout would be tiny and
# a CPU spike on a busy CI machine would then fail every circuit.
LearnCircuitBuildTimeout 0
CircuitBuildTimeout 10
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
UseDefaultFallbackDirs 0
AddressDisableIPv6 1
ClientUseIPv6 0
ClientPreferIPv6ORPort 0
OutboundBindAddress 127.0.0.1",
        pid = std::process::id(),
        info_log = if std::env::var_os(crate::ENV_INFO_LOGS).is_some() {
            format!("Log info file {d}/info.log\n")
        } else {
            String::new()
        },
    );
    for a in authorities {
        let _ = writeln!(
            s,
            "DirAuthority {} orport={} no-v2 v3ident={} 127.0.0.1:{} {}",
            a.nickname, a.or_port, a.v3ident, a.dir_port, a.rsa_identity
        );
    }
    s
}

/// Options every relay (authorities included) shares.
pub(crate) fn relay(or_port: u16, nickname: &str, resolv_conf: &Path) -> String {
    format!(
        "SocksPort 0
Address 127.0.0.1
ORPort 127.0.0.1:{or_port}
ContactInfo {nickname}@timb.invalid
ServerDNSResolvConfFile {}
ServerDNSDetectHijacking 0
ServerDNSAllowBrokenConfig 1
",
        resolv_conf.display()
    )
}

/// `exits`: RSA fingerprints of the relays that get the Exit flag (our exit
/// ports are not the 80/443/6667 the normal flag rule looks for).
///
/// `AuthDirFastGuarantee` below one kilobyte makes every relay Fast from the
/// first consensus. Otherwise the Fast cut-off is the bandwidth of the
/// second-slowest relay, and the exits, which carry nothing before the first
/// client arrives, stay below it for a minute or more on a busy machine: arti
/// builds no exit circuit without Fast (c-tor falls back), so a timb started
/// then found no path.
///
/// `AuthDirVoteStableGuaranteeMinUptime 0` makes every running relay Stable, as most
/// relays of the public network are: a stream to a long-lived port (XMPP's 5222, IRC's
/// 6697, and the benchmarks' ports made long-lived) needs a circuit of Stable relays, and
/// the default rule (uptime above the median) gave it to half of them, by start order.
pub(crate) fn authority(dir_port: u16, exits: &[&str]) -> String {
    let i = VOTING_INTERVAL_SECS;
    let v = VOTE_DELAY_SECS;
    let exits: Vec<String> = exits.iter().map(|fp| format!("${fp}")).collect();
    let exits = exits.join(",");
    format!(
        "AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
DirPort 127.0.0.1:{dir_port}
TestingV3AuthInitialVotingInterval {i}
TestingV3AuthInitialVoteDelay {v}
TestingV3AuthInitialDistDelay {v}
V3AuthVotingInterval {i}
V3AuthVoteDelay {v}
V3AuthDistDelay {v}
AuthDirMaxServersPerAddr 0
AuthDirFastGuarantee 1 byte
AuthDirVoteStableGuaranteeMinUptime 0
TestingDirAuthVoteExit {exits}
TestingDirAuthVoteExitIsStrict 1
ExitRelay 0
ExitPolicy reject *:*
"
    )
}

pub(crate) fn middle() -> String {
    "ExitRelay 0\nExitPolicy reject *:*\n".to_string()
}

/// Clients pick exits by the policy *summary*, which only lists `*:port`
/// accepts, hence one line per port besides the loopback accept.
pub(crate) fn exit(ports: &[u16]) -> String {
    let mut s = String::from(
        "ExitRelay 1
IPv6Exit 0
RefuseUnknownExits 0
ExitPolicyRejectPrivate 0
ExitPolicyRejectLocalInterfaces 0
ExitPolicy accept 127.0.0.0/8:*
",
    );
    for p in ports {
        let _ = writeln!(s, "ExitPolicy accept *:{p}");
    }
    s.push_str("ExitPolicy reject *:*\n");
    s
}

/// With eight relays, the client's guard (and vanguards-lite layer-2 guard)
/// logic often builds paths like guard -> X -> guard for onion circuits; X
/// refuses to "extend back to the previous hop", and onion connections stall
/// for about a minute. Without guards, path selection excludes repeats. Path
/// security is moot on a test network.
///
/// FetchDirInfoEarly makes the client fetch from the authorities, which have
/// every microdescriptor at once; a relay cache asked right after a new
/// consensus often has none yet, and the client then backs off ~10-20 s.
const NO_GUARDS: &str =
    "VanguardsLiteEnabled 0\nUseEntryGuards 0\nFetchDirInfoEarly 1\nFetchDirInfoExtraEarly 1\n";

pub(crate) fn client(socks_port: u16) -> String {
    format!("SocksPort 127.0.0.1:{socks_port} ExtendedErrors\n{NO_GUARDS}")
}

pub(crate) fn onion_host() -> String {
    format!("SocksPort 0\n{NO_GUARDS}")
}

pub(crate) fn onion_service(dir: &Path, port: u16, target_port: u16) -> String {
    format!(
        "HiddenServiceDir {}\nHiddenServicePort {port} 127.0.0.1:{target_port}\n",
        dir.display()
    )
}

/// A bridge: in no consensus (it publishes nothing), reached through an obfs4 listener
/// that `obfs4proxy` runs on `listen:port`.
pub(crate) fn bridge(obfs4proxy: &str, listen: std::net::IpAddr, port: u16) -> String {
    let at = std::net::SocketAddr::new(listen, port);
    format!(
        "BridgeRelay 1
PublishServerDescriptor 0
ExitRelay 0
ExitPolicy reject *:*
ServerTransportPlugin obfs4 exec {obfs4proxy}
ServerTransportListenAddr obfs4 {at}
"
    )
}
