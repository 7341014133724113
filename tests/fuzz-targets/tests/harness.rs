//! The fuzz targets that set up state before the attacker's bytes must really reach it:
//! a target whose set-up silently fails would fuzz nothing and still pass.

use timb_core::{ConnectionState, Event, Target};

#[test]
fn the_xmpp_session_target_logs_in_and_hands_the_data_to_the_session() {
    let events = timb_fuzz_targets::xmpp_session_events(
        b"<message from='peer@evil.test/r' type='chat'><body>hello</body></message>\
          <presence from='room@conference.evil.test/me'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>\
          <message from='room@conference.evil.test/ann' type='groupchat'><body>hi room</body></message>",
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::State(ConnectionState::Connected { .. }))),
        "never connected: {events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Message { from: Target::Direct(f), body, .. }
            if f.starts_with("peer@evil.test") && body == "hello")
        ),
        "the message never arrived: {events:?}"
    );
    // The target joined the room, so its stanzas reach the room's code.
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Message { from: Target::Group(r), body, .. }
            if r == "room@conference.evil.test" && body == "hi room")
        ),
        "the room's message never arrived: {events:?}"
    );
}

#[test]
fn the_otr_target_reaches_libotr_with_a_key() {
    // A peer's OTR query: a session with a key answers with the AKE's first message.
    let replies = timb_fuzz_targets::otr_inbound_replies(b"?OTRv23?");
    assert!(matches!(replies, Some(n) if n >= 1), "{replies:?}");
}
