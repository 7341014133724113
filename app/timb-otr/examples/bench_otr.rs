//! In-process OTR cost: key generation, AKE time, encrypt+decrypt throughput.
//! Prints a Markdown table (`cargo xtask bench otr` runs this).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timb_core::{AccountId, Protocol, Target};
use timb_otr::{AccountConfig, ConversationState, OtrSession, Outgoing};

const ACCT: AccountId = AccountId(1);

fn dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("timb-otr-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn session(name: &str, d: &Path) -> OtrSession {
    let cfg = AccountConfig {
        id: ACCT,
        protocol: Protocol::Xmpp,
        name: name.into(),
        max_message_size: None,
    };
    OtrSession::open(d, vec![cfg]).expect("open OTR store")
}

/// Delivers messages back and forth until both sides are quiet; returns delivered plaintexts.
fn pump(
    a: &mut OtrSession,
    an: &str,
    b: &mut OtrSession,
    bn: &str,
    mut from_a: Vec<Outgoing>,
) -> usize {
    let mut from_b: Vec<Outgoing> = Vec::new();
    let mut delivered = 0;
    while !(from_a.is_empty() && from_b.is_empty()) {
        let mut next_a = Vec::new();
        let mut next_b = Vec::new();
        for m in from_a.drain(..) {
            let r = b.receive(ACCT, an, &m.body).expect("receive");
            delivered += usize::from(r.message.is_some());
            next_b.extend(r.output.outgoing);
        }
        for m in from_b.drain(..) {
            let r = a.receive(ACCT, bn, &m.body).expect("receive");
            delivered += usize::from(r.message.is_some());
            next_a.extend(r.output.outgoing);
        }
        from_a = next_a;
        from_b = next_b;
    }
    delivered
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let (an, bn) = ("alice@bench.test", "bob@bench.test");
    let (da, db) = (dir("a"), dir("b"));
    let mut a = session(an, &da);
    let mut b = session(bn, &db);

    let t = Instant::now();
    a.generate_key_blocking(ACCT).expect("keygen");
    let keygen = t.elapsed();
    b.generate_key_blocking(ACCT).expect("keygen");

    // AKE: query, DH commit/key, reveal-signature, signature; ended and redone each round.
    let rounds = 20;
    let mut ake = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let q = a.start(ACCT, bn).expect("start").outgoing;
        pump(&mut a, an, &mut b, bn, q);
        ake.push(t.elapsed());
        assert!(matches!(
            a.state(ACCT, bn),
            ConversationState::Encrypted { .. }
        ));
        let end = a.end(ACCT, bn).expect("end").outgoing;
        pump(&mut a, an, &mut b, bn, end);
        let end = b.end(ACCT, an).expect("end").outgoing;
        pump(&mut b, bn, &mut a, an, end);
    }
    let q = a.start(ACCT, bn).expect("start").outgoing;
    pump(&mut a, an, &mut b, bn, q);

    let mut rows = Vec::new();
    for (size, alternate) in [(100usize, false), (1000, false), (100, true)] {
        let text = "m".repeat(size);
        let n = 2000;
        let t = Instant::now();
        let mut delivered = 0;
        for i in 0..n {
            // Alternate directions so both sides' keys ratchet as in a real conversation.
            if !alternate || i % 2 == 0 {
                let out = a
                    .send(ACCT, &Target::Direct(bn.into()), &text)
                    .expect("send")
                    .outgoing;
                delivered += pump(&mut a, an, &mut b, bn, out);
            } else {
                let out = b
                    .send(ACCT, &Target::Direct(an.into()), &text)
                    .expect("send")
                    .outgoing;
                delivered += pump(&mut b, bn, &mut a, an, out);
            }
        }
        let el = t.elapsed();
        assert_eq!(delivered, n);
        rows.push((size, alternate, n, el));
    }

    println!("| OTR (libotr 4.1.1, in-process) | value |");
    println!("|---|---|");
    println!(
        "| DSA-1024 key generation | {:.0} ms |",
        keygen.as_secs_f64() * 1e3
    );
    println!(
        "| v3 AKE, median of {rounds} | {:.2} ms |",
        median(ake).as_secs_f64() * 1e3
    );
    for (size, alternate, n, el) in rows {
        let how = if alternate {
            "alternating directions (new DH key each turn)"
        } else {
            "one direction"
        };
        println!(
            "| encrypt+decrypt, {size}-byte messages, {how} ({n}) | {:.0} msg/s ({:.1} µs each) |",
            n as f64 / el.as_secs_f64(),
            el.as_secs_f64() * 1e6 / n as f64
        );
    }
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(da);
    let _ = std::fs::remove_dir_all(db);
}
