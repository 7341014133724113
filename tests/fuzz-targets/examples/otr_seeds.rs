//! Writes `fuzz/corpus/otr_inbound/`: the OTR messages a real peer sends, taken from a
//! conversation between two timb OTR sessions (query, the AKE, data messages, SMP,
//! the end). Run from the repository root:
//! `cargo run -p timb-fuzz-targets --example otr_seeds`. Each run makes new keys, so the
//! bytes differ from run to run; the kinds of message do not.

use timb_core::{AccountId, Protocol, Target};
use timb_otr::{AccountConfig, OtrSession, Output};

const ME: &str = "me@evil.test";
const PEER: &str = "peer@evil.test";

fn session(name: &str) -> OtrSession {
    let cfg = AccountConfig {
        id: AccountId(1),
        protocol: Protocol::Xmpp,
        name: name.into(),
        max_message_size: None,
    };
    let mut s = OtrSession::open_in_memory(vec![cfg]).expect("OTR session");
    s.generate_key_blocking(AccountId(1)).expect("key");
    s
}

/// Delivers everything in `out` from one side to the other until both are quiet;
/// records what the peer sent to us.
fn exchange(me: &mut OtrSession, peer: &mut OtrSession, first: Output, seeds: &mut Vec<String>) {
    let a = AccountId(1);
    let mut from_peer: Vec<String> = first.outgoing.into_iter().map(|o| o.body).collect();
    while !from_peer.is_empty() {
        let mut from_me = Vec::new();
        for wire in from_peer.drain(..) {
            seeds.push(wire.clone());
            let r = me.receive(a, PEER, &wire).expect("me receives");
            from_me.extend(r.output.outgoing.into_iter().map(|o| o.body));
        }
        for wire in from_me {
            let r = peer.receive(a, ME, &wire).expect("peer receives");
            from_peer.extend(r.output.outgoing.into_iter().map(|o| o.body));
        }
    }
}

fn main() {
    let a = AccountId(1);
    let (mut me, mut peer) = (session(ME), session(PEER));
    let mut seeds = Vec::new();
    let q = peer.start(a, ME).expect("start");
    exchange(&mut me, &mut peer, q, &mut seeds);
    let to_me = Target::Direct(ME.into());
    let m = peer.send(a, &to_me, "hello over OTR").expect("send");
    exchange(&mut me, &mut peer, m, &mut seeds);
    let smp = peer
        .smp_start(a, ME, Some("first pet?"), "rex")
        .expect("smp");
    exchange(&mut me, &mut peer, smp, &mut seeds);
    let end = peer.end(a, ME).expect("end");
    exchange(&mut me, &mut peer, end, &mut seeds);
    // And what a peer without OTR, or a broken one, sends.
    seeds.push("hello in the clear".into());
    seeds.push("?OTR Error: You sent encrypted data I did not expect".into());
    seeds.push("?OTR,1,3,?OTR:AAMD,".into());
    let dir = std::path::Path::new("fuzz/corpus/otr_inbound");
    std::fs::create_dir_all(dir).expect("corpus folder");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:02}")), s).expect("seed");
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}
