//! Two OTR sessions in one process, wired back to back through a recording "network".

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use timb_core::{AccountId, Protocol, Target};
use timb_otr::{AccountConfig, OtrEvent, OtrSession, Outgoing, Output};

pub struct Peer {
    pub s: OtrSession,
    pub acct: AccountId,
    pub name: String,
    pub dir: PathBuf,
    pub events: Vec<OtrEvent>,
    pub inbox: Vec<(String, Option<u32>)>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn scratch(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("timb-otr-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

pub fn config(name: &str, max: Option<usize>) -> AccountConfig {
    AccountConfig {
        id: AccountId(1),
        protocol: Protocol::Xmpp,
        name: name.into(),
        max_message_size: max,
    }
}

/// Keys are generated once per test process and kept in memory, to keep the suite fast.
fn key_file(name: &str) -> Vec<u8> {
    static KEYS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        ["alice@example.test", "bob@example.test"]
            .into_iter()
            .map(|n| {
                let d = scratch("keys");
                let mut s = OtrSession::open(&d, vec![config(n, None)]).unwrap();
                s.generate_key_blocking(AccountId(1)).unwrap();
                drop(s);
                let bytes = std::fs::read(d.join("otr.private_key")).unwrap();
                std::fs::remove_dir_all(&d).unwrap();
                (n.to_string(), bytes)
            })
            .collect()
    });
    keys.iter()
        .find(|(n, _)| n == name)
        .map(|(_, k)| k.clone())
        .unwrap()
}

pub fn peer(name: &str, max: Option<usize>) -> Peer {
    let dir = scratch(name.split('@').next().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("otr.private_key"), key_file(name)).unwrap();
    peer_in(name, max, dir)
}

pub fn peer_in(name: &str, max: Option<usize>, dir: PathBuf) -> Peer {
    let s = OtrSession::open(&dir, vec![config(name, max)]).unwrap();
    Peer {
        s,
        acct: AccountId(1),
        name: name.into(),
        dir,
        events: Vec::new(),
        inbox: Vec::new(),
    }
}

pub fn pair(max: Option<usize>) -> (Peer, Peer) {
    (
        peer("alice@example.test", max),
        peer("bob@example.test", max),
    )
}

/// Mutates a message in flight: (index into the log, body) -> new body, or None to drop it.
pub type Tamper = Box<dyn FnMut(usize, &str) -> Option<String>>;

/// Everything that went over the wire, in order, with the sender's name.
#[derive(Default)]
pub struct Wire {
    pub log: Vec<(String, String)>,
    pub tamper: Option<Tamper>,
}

impl Wire {
    pub fn assert_no_plaintext(&self, secret: &str) {
        for (from, body) in &self.log {
            assert!(body.starts_with("?OTR"), "{from} sent a non-OTR message");
            assert!(!body.contains(secret), "{from} sent the plaintext");
        }
    }
}

impl Peer {
    pub fn send(&mut self, to: &str, text: &str) -> Vec<Outgoing> {
        let out = self
            .s
            .send(self.acct, &Target::Direct(to.into()), text)
            .unwrap();
        self.take(out)
    }

    pub fn take(&mut self, out: Output) -> Vec<Outgoing> {
        self.events.extend(out.events);
        out.outgoing
    }

    pub fn has_event(&self, f: impl Fn(&OtrEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

/// Delivers messages back and forth until both sides are quiet.
pub fn pump(
    a: &mut Peer,
    b: &mut Peer,
    mut from_a: Vec<Outgoing>,
    mut from_b: Vec<Outgoing>,
    wire: &mut Wire,
) {
    for _ in 0..1000 {
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        let (next_b, next_a) = (deliver(a, b, from_a, wire), deliver(b, a, from_b, wire));
        from_a = next_a;
        from_b = next_b;
    }
    panic!("the two sessions never went quiet");
}

/// Sends `msgs` from `src` to `dst`; returns what `dst` sent in reply.
fn deliver(src: &Peer, dst: &mut Peer, msgs: Vec<Outgoing>, wire: &mut Wire) -> Vec<Outgoing> {
    let mut replies = Vec::new();
    for m in msgs {
        assert_eq!(m.to, dst.name, "message addressed to someone else");
        let idx = wire.log.len();
        wire.log.push((src.name.clone(), m.body.clone()));
        let body = match wire.tamper.as_mut() {
            Some(t) => match t(idx, &m.body) {
                Some(b) => b,
                None => continue,
            },
            None => m.body,
        };
        let r = dst.s.receive(dst.acct, &src.name, &body).unwrap();
        if let Some(msg) = r.message {
            dst.inbox.push((msg, r.instance));
        }
        replies.extend(dst.take(r.output));
    }
    replies
}

pub fn secure(a: &mut Peer, b: &mut Peer, wire: &mut Wire) {
    let q = a.s.start(a.acct, &b.name).unwrap();
    let q = a.take(q);
    pump(a, b, q, Vec::new(), wire);
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        timb_otr::session::ConversationState::Encrypted { .. }
    ));
    assert!(matches!(
        b.s.state(b.acct, &a.name),
        timb_otr::session::ConversationState::Encrypted { .. }
    ));
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
