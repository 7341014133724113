//! `cargo xtask bench irc`: message rate and one-way latency between two
//! accounts through a real ngircd, timb's client against a bare line client
//! as the baseline. Prints a Markdown table.
//!
//! Rows measured here go over loopback TCP, which isolates the client's own
//! cost. The Tor rows (timb over arti vs. the baseline over c-tor's SOCKS
//! port, both to the TestNet exit ports 8–11) plug in through `Path`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use timb_core::{AccountHandle, Command, Event, MessageKind, Target};
use timb_irc::IrcConfig;

const LATENCY_SAMPLES: usize = 30;
const RATE_MESSAGES: usize = 60;

struct Row {
    path: &'static str,
    client: &'static str,
    rate: f64,
    median_ms: f64,
    p90_ms: f64,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Bench accounts switch timb's own flood control off so that what is
/// measured is the path; ngircd's flood control still applies to both rows.
fn bench_config(nick: &str) -> IrcConfig {
    let mut c = IrcConfig::new(nick);
    c.send_burst = 100_000;
    c.send_interval = Duration::from_millis(1);
    c
}

async fn send(h: &AccountHandle, to: &str, body: String) {
    h.commands
        .send(Command::Send {
            to: Target::Direct(to.into()),
            body,
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
}

async fn recv_body(h: &mut AccountHandle) -> String {
    match wait_for(h, "bench message", |e| matches!(e, Event::Message { .. })).await {
        Event::Message { body, .. } => body,
        _ => unreachable!(),
    }
}

async fn timb_row(path: &'static str, port: u16) -> Row {
    let mut a = account(1, port, bench_config("benchA")).await;
    let mut b = account(2, port, bench_config("benchB")).await;
    wait_connected(&mut a).await;
    wait_connected(&mut b).await;
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        send(&a, "benchB", format!("lat {i}")).await;
        assert_eq!(recv_body(&mut b).await, format!("lat {i}"));
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        send(&a, "benchB", format!("rate {i}")).await;
    }
    for i in 0..RATE_MESSAGES {
        assert_eq!(recv_body(&mut b).await, format!("rate {i}"));
    }
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    Row {
        path,
        client: "timb (timb-irc session)",
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

async fn baseline_row(path: &'static str, port: u16) -> Row {
    let mut a = RawClient::register(port, "baseA").await;
    let mut b = RawClient::register(port, "baseB").await;
    let mut lat = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        a.send(&format!("PRIVMSG baseB :lat {i}")).await;
        let want = format!(":lat {i}");
        b.expect(|l| l.ends_with(&want)).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    for i in 0..RATE_MESSAGES {
        a.send(&format!("PRIVMSG baseB :rate {i}")).await;
    }
    let last = format!(":rate {}", RATE_MESSAGES - 1);
    b.expect(|l| l.ends_with(&last)).await;
    let rate = RATE_MESSAGES as f64 / t.elapsed().as_secs_f64();
    Row {
        path,
        client: "baseline (raw lines)",
        rate,
        median_ms: percentile(&mut lat, 0.5),
        p90_ms: percentile(&mut lat, 0.9),
    }
}

#[tokio::main]
async fn main() {
    let server = Ngircd::start().await;
    let rows = vec![
        timb_row("loopback TCP, no Tor", server.port).await,
        baseline_row("loopback TCP, no Tor", server.port).await,
    ];
    println!(
        "| path | client | msgs/s ({RATE_MESSAGES} back to back) | latency median ({LATENCY_SAMPLES} sequential) | latency p90 |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} | {:.2} ms | {:.2} ms |",
            r.path, r.client, r.rate, r.median_ms, r.p90_ms
        );
    }
    println!(
        "\nngircd 26 limits each client to a few commands per second, so msgs/s \
         is the server's flood control for both clients; latency shows the path."
    );
}
