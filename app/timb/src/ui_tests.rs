//! The window driven headless through slint's testing backend: what a user
//! sees and can do, checked on the real `.slint` screens and controller.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, Model};
use timb_core::{AccountId, Event, MessageKind, Target};

use crate::accounts::Remembered;
use crate::backend::{Backend, OtrNote, Request, SmpEvent, UiEvent};
use crate::controller::{App, Shared};
use crate::{FormError, MainWindow, MsgStatus, OtrState};

thread_local! {
    static INIT: Cell<bool> = const { Cell::new(false) };
}

/// Records what the window asked for instead of touching any network.
struct Recorder(Rc<RefCell<Vec<Request>>>);

impl Backend for Recorder {
    fn request(&mut self, r: Request) {
        self.0.borrow_mut().push(r);
    }
}

struct Ui {
    w: MainWindow,
    app: Shared,
    log: Rc<RefCell<Vec<Request>>>,
}

fn ui() -> Ui {
    // The testing platform is per thread, and each test runs on its own thread.
    INIT.with(|i| {
        if !i.get() {
            i_slint_backend_testing::init_no_event_loop();
            i.set(true);
        }
    });
    let w = MainWindow::new().unwrap();
    w.window().set_size(slint::LogicalSize::new(960.0, 640.0));
    w.show().unwrap();
    w.window()
        .dispatch_event(WindowEvent::WindowActiveChanged(true));
    let log = Rc::new(RefCell::new(Vec::new()));
    let app = App::attach(
        &w,
        Box::new(Recorder(log.clone())),
        None,
        Remembered::default(),
    );
    // Independent of the machine's LANG.
    app.borrow_mut().set_language("en");
    Ui { w, app, log }
}

impl Ui {
    fn find(&self, label: &str, role: AccessibleRole) -> ElementHandle {
        self.try_find(label, role)
            .unwrap_or_else(|| panic!("no {role:?} labelled {label:?}"))
    }

    fn try_find(&self, label: &str, role: AccessibleRole) -> Option<ElementHandle> {
        ElementHandle::find_by_accessible_label(&self.w, label)
            .find(|e| e.accessible_role() == Some(role))
    }

    fn texts_containing(&self, needle: &str) -> Vec<ElementHandle> {
        let needle = needle.to_owned();
        self.w
            .root_element()
            .query_descendants()
            .match_predicate(move |e| {
                e.accessible_label()
                    .is_some_and(|l| l.contains(needle.as_str()))
            })
            .find_all()
    }

    fn id(&self, id: &str) -> ElementHandle {
        ElementHandle::find_by_element_id(&self.w, id)
            .next()
            .unwrap_or_else(|| panic!("no element {id}"))
    }

    fn click(&self, label: &str) {
        self.find(label, AccessibleRole::Button)
            .invoke_accessible_default_action();
    }

    fn type_into(&self, label: &str, text: &str) {
        self.find(label, AccessibleRole::TextInput)
            .set_accessible_value(text);
    }

    fn key(&self, text: impl Into<slint::SharedString>) {
        let text = text.into();
        self.w
            .window()
            .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
        self.w
            .window()
            .dispatch_event(WindowEvent::KeyReleased { text });
    }

    /// An XMPP account (alice@example.org) added through the form.
    fn with_account(&self) -> AccountId {
        self.click("Add account");
        self.type_into("Server or .onion address", "example.org");
        self.type_into("Your address (user@server)", "alice@example.org");
        self.click("Save account");
        assert!(!self.w.get_account_dialog_open());
        AccountId(1)
    }

    /// An XMPP account added through the form, with a chat with Bob open.
    fn with_chat(&self) -> AccountId {
        let id = self.with_account();
        self.app
            .borrow_mut()
            .open_conversation(id, Target::Direct("bob@example.org".into()));
        id
    }

    fn handle(&self, e: UiEvent) {
        self.app.borrow_mut().handle(e);
    }

    fn banner(&self) -> String {
        self.id("ConversationView::banner")
            .accessible_label()
            .unwrap()
            .to_string()
    }
}

#[test]
fn account_form_validation_messages() {
    let u = ui();
    u.click("Add account");
    assert!(u.w.get_account_dialog_open());
    u.click("Save account");
    assert_eq!(u.w.get_form_error(), FormError::ServerEmpty);
    assert!(!u.texts_containing("Enter the server's address.").is_empty());

    u.type_into("Server or .onion address", "bad host!");
    u.click("Save account");
    assert_eq!(u.w.get_form_error(), FormError::ServerInvalid);
    assert!(!u
        .texts_containing("The server address is not valid")
        .is_empty());

    u.type_into("Server or .onion address", "example.org");
    u.type_into("Port", "99999");
    u.click("Save account");
    assert_eq!(u.w.get_form_error(), FormError::PortInvalid);

    u.type_into("Port", "");
    u.type_into("Your address (user@server)", "alice");
    u.click("Save account");
    assert_eq!(u.w.get_form_error(), FormError::JidInvalid);
    assert!(!u
        .texts_containing("Your address must look like alice@example.org.")
        .is_empty());

    u.type_into("Your address (user@server)", "alice@example.org");
    u.click("Save account");
    assert!(!u.w.get_account_dialog_open());
    assert_eq!(u.w.get_accounts().row_count(), 1);
    assert_eq!(
        u.w.get_accounts().row_data(0).unwrap().label,
        "alice@example.org"
    );
    // Saving an account never connects.
    assert!(u.log.borrow().is_empty());
}

#[test]
fn connecting_asks_for_the_password_and_starts_tor_only_then() {
    let u = ui();
    assert_eq!(u.w.get_tor_state(), crate::TorState::Idle);
    u.with_chat();
    assert!(u.log.borrow().is_empty());
    u.click("Connect alice@example.org");
    assert!(u.w.get_password_open());
    assert!(u.log.borrow().is_empty());
    u.type_into("Password", "s3cret");
    u.app
        .borrow_mut()
        .handle(UiEvent::Tor(crate::backend::TorStatus::Starting {
            fraction: 0.4,
            phase: timb_tor::TorPhase::Directory,
        }));
    u.w.invoke_password_submit();
    assert!(!u.w.get_password_open());
    assert_eq!(u.w.get_password_input(), "");
    match &u.log.borrow()[..] {
        [Request::Connect { password, .. }] => assert_eq!(password.as_deref(), Some("s3cret")),
        other => panic!("unexpected requests {other:?}"),
    }
    assert_eq!(u.w.get_tor_state(), crate::TorState::Starting);
}

#[test]
fn tor_progress_is_one_plain_sentence_with_the_number_once() {
    let u = ui();
    for (fraction, phase, words) in [
        (
            0.0,
            timb_tor::TorPhase::Reaching,
            "Reaching the Tor network… 0%",
        ),
        (
            0.08,
            timb_tor::TorPhase::Reaching,
            "Reaching the Tor network… 8%",
        ),
        (
            0.4,
            timb_tor::TorPhase::Directory,
            "Learning which Tor relays exist… 40%",
        ),
        (
            0.95,
            timb_tor::TorPhase::Finishing,
            "Almost ready: preparing private paths through Tor… 95%",
        ),
    ] {
        u.handle(UiEvent::Tor(crate::backend::TorStatus::Starting {
            fraction,
            phase,
        }));
        let shown: Vec<String> = u
            .texts_containing("%")
            .iter()
            .filter_map(|e| e.accessible_label().map(|l| l.to_string()))
            .collect();
        assert_eq!(shown, [words], "at {fraction}");
    }
}

#[test]
fn banner_follows_otr_events() {
    let u = ui();
    let id = u.with_chat();
    let peer = "bob@example.org".to_owned();
    assert!(u
        .banner()
        .starts_with("Not private yet (waiting for encryption)"));
    // A screen reader reads the banner as text, by the words it shows.
    assert_eq!(
        u.id("ConversationView::banner").accessible_role(),
        Some(AccessibleRole::Text)
    );
    assert_eq!(u.w.get_otr_state(), OtrState::NotPrivate);

    u.handle(UiEvent::Otr(OtrNote::Secure {
        account: id,
        peer: "bob@example.org/phone".into(),
        fingerprint: "0123456789abcdef0123456789abcdef01234567".into(),
        verified: false,
    }));
    assert!(u.banner().starts_with("Private, unverified"));
    assert_eq!(
        u.w.get_their_fingerprint(),
        "01234567 89ABCDEF 01234567 89ABCDEF 01234567"
    );

    u.handle(UiEvent::Otr(OtrNote::Smp {
        account: id,
        peer: peer.clone(),
        event: SmpEvent::Succeeded,
    }));
    assert_eq!(u.banner(), "Private, verified");

    u.handle(UiEvent::Otr(OtrNote::Ended {
        account: id,
        peer: peer.clone(),
    }));
    assert!(u.banner().starts_with("Private conversation ended"));

    // After the peer ended it, a message waits for a new private conversation.
    u.w.invoke_send("still there".into());
    assert!(u.banner().starts_with("Private conversation ended"));
    let rows = u.w.get_messages();
    assert_eq!(
        rows.row_data(rows.row_count() - 1).unwrap().status,
        MsgStatus::Waiting
    );
}

#[test]
fn an_unanswered_request_for_encryption_says_why_and_what_to_do() {
    let u = ui();
    let id = u.with_chat();
    let peer = "bob@example.org".to_owned();
    u.w.invoke_send("are you there?".into());
    u.handle(UiEvent::Otr(OtrNote::Waiting {
        account: id,
        peer: peer.clone(),
        held: 1,
    }));
    let hint = "bob@example.org did not answer the request for a private conversation";
    assert!(
        u.texts_containing(hint).is_empty(),
        "not while still waiting"
    );
    u.handle(UiEvent::Otr(OtrNote::Undelivered {
        account: id,
        peer: peer.clone(),
        count: 1,
    }));
    assert_eq!(u.texts_containing(hint).len(), 1);
    let rows = u.w.get_messages();
    assert_eq!(
        rows.row_data(rows.row_count() - 1).unwrap().status,
        MsgStatus::Undelivered
    );
    // Once private, the hint goes.
    u.handle(UiEvent::Otr(OtrNote::Secure {
        account: id,
        peer,
        fingerprint: "ab".repeat(20),
        verified: false,
    }));
    assert!(u.texts_containing(hint).is_empty());
}

#[test]
fn ending_the_private_conversation_shows_at_once_and_holds_messages() {
    let u = ui();
    let id = u.with_chat();
    let peer = "bob@example.org".to_owned();
    u.handle(UiEvent::Otr(OtrNote::Secure {
        account: id,
        peer: peer.clone(),
        fingerprint: "ab".repeat(20),
        verified: true,
    }));
    assert_eq!(u.banner(), "Private, verified");
    u.find("End private conversation", AccessibleRole::Button)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    assert!(matches!(
        &u.log.borrow()[..],
        [Request::EndPrivate { peer: p, .. }] if *p == peer
    ));
    // At once, before anything comes back: ended, and the button offers a new start.
    assert!(
        u.banner().starts_with("Private conversation ended"),
        "{}",
        u.banner()
    );
    assert_eq!(u.w.get_otr_state(), OtrState::Ended);
    assert!(u
        .try_find("End private conversation", AccessibleRole::Button)
        .is_none());
    u.find("Start private conversation", AccessibleRole::Button);
    // The reason stays on screen while the user types.
    let hint = "Private conversation ended. Start a new one to send.";
    assert_eq!(u.texts_containing(hint).len(), 1);
    u.w.set_draft("typing".into());
    assert_eq!(
        u.texts_containing(hint).len(),
        1,
        "the hint must not vanish"
    );

    // The OTR layer confirms, then holds what the user types: shown waiting, still ended.
    u.handle(UiEvent::Otr(OtrNote::Ended {
        account: id,
        peer: peer.clone(),
    }));
    u.log.borrow_mut().clear();
    u.w.invoke_send("typed after end".into());
    assert!(matches!(
        &u.log.borrow()[..],
        [Request::SendPrivate { body, .. }] if body == "typed after end"
    ));
    u.handle(UiEvent::Otr(OtrNote::Waiting {
        account: id,
        peer: peer.clone(),
        held: 1,
    }));
    assert_eq!(u.w.get_otr_state(), OtrState::Ended);
    let rows = u.w.get_messages();
    assert_eq!(
        rows.row_data(rows.row_count() - 1).unwrap().status,
        MsgStatus::Waiting
    );

    // Only the user's explicit start asks for a new private conversation.
    u.log.borrow_mut().clear();
    u.find("Start private conversation", AccessibleRole::Button)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    assert!(matches!(
        &u.log.borrow()[..],
        [Request::StartPrivate { peer: p, .. }] if *p == peer
    ));
    u.handle(UiEvent::Otr(OtrNote::Secure {
        account: id,
        peer: peer.clone(),
        fingerprint: "ab".repeat(20),
        verified: true,
    }));
    assert_eq!(u.banner(), "Private, verified");
    let rows = u.w.get_messages();
    assert_eq!(
        rows.row_data(rows.row_count() - 1).unwrap().status,
        MsgStatus::Sent
    );
}

#[test]
fn one_click_on_a_contact_or_group_row_opens_it() {
    let u = ui();
    let id = u.with_account();
    u.handle(UiEvent::Account(
        id,
        Event::RosterSet(timb_core::RosterItem {
            id: "bob@example.org".into(),
            name: None,
            subscribed_to: true,
            subscribed_from: true,
        }),
    ));
    assert!(!u.w.get_conv_open());
    // A real pointer press and release at the row's centre, once.
    u.find("bob@example.org, offline", AccessibleRole::ListItem)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    assert!(u.w.get_conv_open(), "one click must open the conversation");
    assert_eq!(u.w.get_conv_id(), "bob@example.org");

    let room = "room@conference.example.org";
    u.handle(UiEvent::Account(
        id,
        Event::GroupJoined {
            room: room.into(),
            nick: "alice".into(),
        },
    ));
    assert_eq!(u.w.get_conv_id(), "bob@example.org");
    u.find(&format!("Group {room}"), AccessibleRole::ListItem)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    assert_eq!(u.w.get_conv_id(), room);
    assert!(u.w.get_conv_is_group());
}

/// A contact's row is the same element after other contacts change (a new name, a new
/// contact before it in the list): a screen reader keeps its place, and an action on a
/// row found a moment ago reaches that row.
#[test]
fn a_contact_row_stays_the_same_element_when_other_contacts_change() {
    let u = ui();
    let id = u.with_account();
    let roster = |who: &str, name: Option<&str>| {
        UiEvent::Account(
            id,
            Event::RosterSet(timb_core::RosterItem {
                id: who.into(),
                name: name.map(Into::into),
                subscribed_to: true,
                subscribed_from: true,
            }),
        )
    };
    u.handle(roster("bob@example.org", None));
    u.handle(roster("carol@example.org", None));
    let bob = u.find("bob@example.org, offline", AccessibleRole::ListItem);
    u.handle(roster("carol@example.org", Some("Carol")));
    u.find("Carol, offline", AccessibleRole::ListItem);
    // Sorted before bob: inserted above his row.
    u.handle(roster("amir@example.org", None));
    u.find("amir@example.org, offline", AccessibleRole::ListItem);
    assert!(bob.is_valid(), "bob's row was made anew");
    assert_eq!(
        bob.accessible_label().as_deref(),
        Some("bob@example.org, offline")
    );
    bob.mock_single_click(slint::platform::PointerEventButton::Left);
    assert_eq!(u.w.get_conv_id(), "bob@example.org");
}

/// Two contact requests; the first is accepted. Its row goes, with its buttons; the
/// second request keeps its own row and buttons, so a button held (focused, or found by
/// a screen reader) never comes to answer another person's request.
#[test]
fn answering_one_request_leaves_the_next_ones_buttons_theirs() {
    let u = ui();
    u.with_chat();
    let asks = |who: &str| {
        UiEvent::Account(
            AccountId(1),
            Event::SubscriptionRequest { from: who.into() },
        )
    };
    u.handle(asks("anna@example.org"));
    u.handle(asks("ben@example.org"));
    let anna = u.find("Accept anna@example.org", AccessibleRole::Button);
    let ben = u.find("Accept ben@example.org", AccessibleRole::Button);
    // A click: the button takes the focus, as it does under a pointer or after Tab.
    anna.mock_single_click(slint::platform::PointerEventButton::Left);
    let answered = |who: &str| {
        u.log.borrow().iter().any(|r| {
            matches!(r,
            Request::Command { command: timb_core::Command::AnswerSubscription { from, .. }, .. }
            if from == who)
        })
    };
    assert!(answered("anna@example.org"), "{:?}", u.log.borrow());
    // The keys that press a focused button: they must not answer ben.
    u.key(" ");
    u.key("\n");
    assert!(
        !answered("ben@example.org"),
        "a key press answered ben's request"
    );
    assert!(ben.is_valid(), "ben's row was made anew");
    assert_eq!(
        ben.accessible_label().as_deref(),
        Some("Accept ben@example.org")
    );
    ben.mock_single_click(slint::platform::PointerEventButton::Left);
    assert!(answered("ben@example.org"));
    assert!(u
        .try_find("Accept ben@example.org", AccessibleRole::Button)
        .is_none());
}

#[test]
fn events_that_waited_together_show_as_one_by_one() {
    // What `ui_sink` hands the window after a busy turn: roster pushes, a room and a
    // message, in one batch. The window must end as if each had been handled alone, the
    // contact list included (it is rebuilt once, at the end of the batch).
    let (one, batch) = (ui(), ui());
    let id = one.with_chat();
    assert_eq!(batch.with_chat(), id);
    let roster = |n: usize| {
        UiEvent::Account(
            id,
            Event::RosterSet(timb_core::RosterItem {
                id: format!("friend{n}@example.org"),
                name: None,
                subscribed_to: true,
                subscribed_from: true,
            }),
        )
    };
    let events = || {
        let mut v: Vec<UiEvent> = (0..5).map(roster).collect();
        v.push(UiEvent::Account(
            id,
            Event::GroupJoined {
                room: "room@conference.example.org".into(),
                nick: "alice".into(),
            },
        ));
        v.push(UiEvent::Account(
            id,
            Event::Message {
                from: Target::Direct("bob@example.org".into()),
                body: "batched hello".into(),
                kind: MessageKind::Normal,
                sender: None,
                received_at: 0,
            },
        ));
        v.push(roster(5));
        v
    };
    for e in events() {
        one.handle(e);
    }
    batch.app.borrow_mut().handle_batch(events());
    let rows = |u: &Ui| -> Vec<String> {
        u.w.root_element()
            .query_descendants()
            .match_predicate(|e| e.accessible_role() == Some(AccessibleRole::ListItem))
            .find_all()
            .iter()
            .filter_map(|e| e.accessible_label().map(|l| l.to_string()))
            .collect()
    };
    let shown = rows(&batch);
    assert_eq!(shown, rows(&one));
    for n in 0..6 {
        let friend = format!("friend{n}@example.org");
        assert!(
            shown.iter().any(|r| r.starts_with(&friend)),
            "{friend} is not in the contact list: {shown:?}"
        );
    }
    assert!(
        shown.iter().any(|r| r.starts_with("Group room@")),
        "{shown:?}"
    );
    assert_eq!(
        batch.texts_containing("batched hello").len(),
        one.texts_containing("batched hello").len()
    );
    assert!(!batch.texts_containing("batched hello").is_empty());
}

#[test]
fn held_message_is_shown_waiting_then_sent() {
    let u = ui();
    let id = u.with_chat();
    u.w.invoke_send("hello bob".into());
    assert!(matches!(
        &u.log.borrow()[..],
        [Request::SendPrivate { peer, body, .. }] if peer == "bob@example.org" && body == "hello bob"
    ));
    let rows = u.w.get_messages();
    assert_eq!(rows.row_count(), 1);
    assert_eq!(rows.row_data(0).unwrap().status, MsgStatus::Waiting);
    assert!(!u
        .texts_containing("waiting for encryption, not sent yet")
        .is_empty());

    u.handle(UiEvent::Otr(OtrNote::Waiting {
        account: id,
        peer: "bob@example.org".into(),
        held: 1,
    }));
    assert_eq!(
        u.w.get_messages().row_data(0).unwrap().status,
        MsgStatus::Waiting
    );

    u.handle(UiEvent::Otr(OtrNote::Secure {
        account: id,
        peer: "bob@example.org".into(),
        fingerprint: "aa".repeat(20),
        verified: false,
    }));
    assert_eq!(
        u.w.get_messages().row_data(0).unwrap().status,
        MsgStatus::Sent
    );
    assert!(u.texts_containing("waiting for encryption").len() <= 1);

    // Given up on by OTR: still visible, marked as not sent.
    u.handle(UiEvent::Otr(OtrNote::Insecure {
        account: id,
        peer: "bob@example.org".into(),
    }));
    u.w.invoke_send("second".into());
    u.handle(UiEvent::Otr(OtrNote::Undelivered {
        account: id,
        peer: "bob@example.org".into(),
        count: 1,
    }));
    let rows = u.w.get_messages();
    assert_eq!(rows.row_count(), 2);
    assert_eq!(rows.row_data(1).unwrap().status, MsgStatus::Undelivered);
    assert!(!u.texts_containing("NOT SENT").is_empty());
}

#[test]
fn links_are_plain_text_with_a_copy_button() {
    let u = ui();
    let id = u.with_chat();
    let url = "https://example.org/x?y=1";
    u.handle(UiEvent::Account(
        id,
        Event::Message {
            from: Target::Direct("bob@example.org/laptop".into()),
            sender: None,
            body: format!("look at {url} please"),
            kind: MessageKind::Normal,
            received_at: 3600,
        },
    ));
    let body = u
        .texts_containing(&format!("look at {url}"))
        .into_iter()
        .find(|e| e.accessible_role() == Some(AccessibleRole::Text))
        .expect("message body shown as text");
    // Clicking the text does nothing: no request, nothing copied, no dialog.
    body.mock_single_click(slint::platform::PointerEventButton::Left);
    body.invoke_accessible_default_action();
    assert!(u.log.borrow().is_empty());
    assert!(u.texts_containing("Copied to the clipboard").is_empty());
    // Nothing that mentions the link is a link or a button except the copy button.
    for e in u.texts_containing(url) {
        let role = e.accessible_role();
        assert!(
            role == Some(AccessibleRole::Text)
                || (role == Some(AccessibleRole::Button)
                    && e.accessible_label().unwrap() == format!("Copy link {url}").as_str()),
            "{role:?} {:?}",
            e.accessible_label()
        );
    }
    u.click(&format!("Copy link {url}"));
    assert!(!u
        .texts_containing(&format!("Copied to the clipboard: {url}"))
        .is_empty());
    assert!(u.log.borrow().is_empty());
    let row = u.w.get_messages().row_data(0).unwrap();
    assert_eq!(row.sender, "bob@example.org");
    assert_eq!(row.time, "01:00");
}

#[test]
fn arabic_mirrors_the_layout() {
    let u = ui();
    u.with_chat();
    let sidebar = u.id("MainWindow::sidebar");
    let conv = u.id("MainWindow::conversation");
    let send = || {
        u.find("Message", AccessibleRole::TextInput)
            .absolute_position()
            .x
    };
    assert!(sidebar.absolute_position().x < conv.absolute_position().x);
    let input_ltr = send();
    let button_x = |label: &str| u.find(label, AccessibleRole::Button).absolute_position().x;
    assert!(
        button_x("Verify this contact and manage encryption") < button_x("Close this conversation")
    );

    u.app.borrow_mut().set_language("ar");
    assert!(u.w.global::<crate::Locale>().get_rtl());
    assert!(
        sidebar.absolute_position().x > conv.absolute_position().x,
        "sidebar {:?} conversation {:?}",
        sidebar.absolute_position(),
        conv.absolute_position()
    );
    // The strings are Arabic now, and the message field moved with its pane.
    u.find("رسالة", AccessibleRole::TextInput);
    assert!(!u.texts_containing("الحسابات").is_empty());
    let input_rtl = u
        .find("رسالة", AccessibleRole::TextInput)
        .absolute_position()
        .x;
    assert!(input_rtl < input_ltr, "{input_rtl} vs {input_ltr}");
    // Buttons run in reading order: "Verify" next to the title, on the right.
    assert!(button_x("التحقق من جهة الاتصال هذه وإدارة التشفير") > button_x("إغلاق هذه المحادثة"));

    u.app.borrow_mut().set_language("fr");
    assert!(!u.w.global::<crate::Locale>().get_rtl());
    assert!(sidebar.absolute_position().x < conv.absolute_position().x);
    assert!(!u.texts_containing("Comptes").is_empty());
}

#[test]
fn account_errors_come_from_the_catalogue_and_show_the_keys_to_compare() {
    let u = ui();
    let id = u.with_chat();
    let (old, new) = ("ab".repeat(32), "cd".repeat(32));
    u.handle(UiEvent::Account(
        id,
        Event::Error(timb_core::AccountError::Certificate(
            timb_core::CertProblem::KeyChanged {
                old: old.clone(),
                new: new.clone(),
            },
        )),
    ));
    let english = format!("It was {old} and is now {new}.");
    assert_eq!(u.texts_containing(&english).len(), 1);
    assert_eq!(
        u.w.get_accounts().row_data(0).unwrap().state,
        crate::ConnState::Failed
    );

    // Every kind has its own sentence, and none is arti's or rustls's English.
    u.handle(UiEvent::Account(
        id,
        Event::Error(timb_core::AccountError::Connect(
            timb_core::ConnectError::OnionUnreachable,
        )),
    ));
    assert!(u.texts_containing(&english).is_empty());
    assert_eq!(
        u.texts_containing("The onion service could not be reached.")
            .len(),
        1
    );
    u.app.borrow_mut().set_language("ar");
    assert_eq!(u.texts_containing("تعذّر الوصول إلى خدمة onion.").len(), 1);
    assert!(u
        .texts_containing("The onion service could not be reached.")
        .is_empty());
    u.app.borrow_mut().set_language("en");

    // Connecting again clears it.
    u.click("Connect alice@example.org");
    u.type_into("Password", "pw");
    u.w.invoke_password_submit();
    assert!(u
        .texts_containing("The onion service could not be reached.")
        .is_empty());
}

#[test]
fn a_trust_on_first_use_server_shows_its_key_while_connected() {
    let u = ui();
    let id = u.with_chat();
    let key = "5e".repeat(32);
    let connected = || {
        UiEvent::Account(
            id,
            Event::State(timb_core::ConnectionState::Connected {
                spki_sha256: Some(key.clone()),
            }),
        )
    };
    // with_chat's account checks web PKI: its key is not the point there.
    u.handle(connected());
    assert!(u.texts_containing(&key).is_empty());
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Disconnected),
    ));
    u.click("Edit alice@example.org");
    let mut form = u.w.get_account_form();
    form.tls = 1; // "Trust on first use"
    u.w.set_account_form(form);
    u.click("Save account");
    assert!(!u.w.get_account_dialog_open());
    u.handle(connected());
    assert_eq!(u.texts_containing(&key).len(), 1);
    // A new connection must prove its key again.
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Connecting),
    ));
    assert!(u.texts_containing(&key).is_empty());
}

#[test]
fn the_remember_box_sits_at_the_reading_start() {
    let u = ui();
    u.click("Add account");
    let box_x = || {
        u.find(
            "Remember this account on this computer",
            AccessibleRole::Checkbox,
        )
        .absolute_position()
        .x
    };
    let text_x = || {
        u.texts_containing("(never the password)")
            .iter()
            .find(|e| e.accessible_role() == Some(AccessibleRole::Text))
            .map(|e| e.absolute_position().x)
            .unwrap_or_default()
    };
    assert!(box_x() < text_x(), "left of its text in English");
    u.app.borrow_mut().set_language("ar");
    let label = "تذكّر هذا الحساب على هذا الحاسوب";
    let (b, t) = (
        u.find(label, AccessibleRole::Checkbox)
            .absolute_position()
            .x,
        u.texts_containing("دون كلمة المرور أبدًا")
            .iter()
            .find(|e| e.accessible_role() == Some(AccessibleRole::Text))
            .map(|e| e.absolute_position().x),
    );
    assert!(
        t.is_some_and(|t| b > t),
        "right of its text in Arabic: {b} vs {t:?}"
    );
}

#[test]
fn group_chat_says_it_is_not_encrypted() {
    let u = ui();
    let id = u.with_chat();
    u.handle(UiEvent::Account(
        id,
        Event::GroupJoined {
            room: "room@conference.example.org".into(),
            nick: "alice".into(),
        },
    ));
    u.app
        .borrow_mut()
        .open_conversation(id, Target::Group("room@conference.example.org".into()));
    assert!(u.banner().contains("NOT end-to-end encrypted"));
    u.handle(UiEvent::Account(
        id,
        Event::GroupMembers {
            room: "room@conference.example.org".into(),
            members: vec!["bob".into(), "alice".into()],
        },
    ));
    assert_eq!(u.w.get_members().row_count(), 2);
    u.w.invoke_send("hi all".into());
    assert!(matches!(
        &u.log.borrow()[..],
        [Request::Command {
            command: timb_core::Command::Send {
                to: Target::Group(_),
                ..
            },
            ..
        }]
    ));
}

#[test]
fn enter_in_the_account_form_saves_it() {
    let u = ui();
    u.click("Add account");
    u.type_into("Server or .onion address", "example.org");
    u.type_into("Your address (user@server)", "alice@example.org");
    // Focus the field with a real click, then press Enter in it.
    u.find("Your address (user@server)", AccessibleRole::TextInput)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    u.key(Key::Return);
    assert!(!u.w.get_account_dialog_open(), "Enter must save the form");
    assert_eq!(u.w.get_accounts().row_count(), 1);

    // With an error, Enter shows it and keeps what was typed.
    u.click("Add account");
    u.type_into("Server or .onion address", "bad host!");
    u.find("Server or .onion address", AccessibleRole::TextInput)
        .mock_single_click(slint::platform::PointerEventButton::Left);
    u.key(Key::Return);
    assert!(u.w.get_account_dialog_open());
    assert_eq!(u.w.get_form_error(), FormError::ServerInvalid);
    assert_eq!(u.w.get_accounts().row_count(), 1);
}

#[test]
fn keyboard_escape_closes_and_enter_sends() {
    let u = ui();
    u.with_chat();
    u.w.set_about_open(true);
    // The dialog takes focus when it appears, so Escape reaches it.
    u.find("Close about", AccessibleRole::Button);
    u.key(Key::Escape);
    assert!(!u.w.get_about_open());

    // Focus went back to the message field.
    for c in "hey".chars() {
        u.key(c.to_string());
    }
    assert_eq!(u.w.get_draft(), "hey");
    u.key(Key::Return);
    assert_eq!(u.log.borrow().len(), 1);
    assert_eq!(u.w.get_draft(), "");

    u.click("Add account");
    assert!(u.w.get_account_dialog_open());
    u.key(Key::Escape);
    assert!(!u.w.get_account_dialog_open());
}

#[test]
fn scrollback_in_the_view_is_bounded() {
    let u = ui();
    let id = u.with_chat();
    for i in 0..crate::state::SCROLLBACK + 50 {
        u.handle(UiEvent::Account(
            id,
            Event::Message {
                from: Target::Direct("bob@example.org".into()),
                sender: None,
                body: format!("m{i}"),
                kind: MessageKind::Normal,
                received_at: 0,
            },
        ));
    }
    let rows = u.w.get_messages();
    assert_eq!(rows.row_count(), crate::state::SCROLLBACK);
    assert_eq!(rows.row_data(0).unwrap().body, "m50");
}

/// Renders the main screens to PPM files for a person to look at:
/// `TIMB_SNAPSHOT_DIR=/tmp/shots cargo test -p timb snapshots -- --ignored`.
#[test]
fn only_chosen_settings_reach_the_profile_and_never_the_password() {
    INIT.with(|i| {
        if !i.get() {
            i_slint_backend_testing::init_no_event_loop();
            i.set(true);
        }
    });
    let dir = std::env::temp_dir().join(format!("timb-gui-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = MainWindow::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let app = App::attach(
        &w,
        Box::new(Recorder(log)),
        Some(dir.clone()),
        Remembered::default(),
    );
    let u = Ui {
        w,
        app,
        log: Rc::new(RefCell::new(Vec::new())),
    };
    let file = crate::accounts::file_path(&dir);

    // Not ticked: nothing is written.
    u.click("Add account");
    u.type_into("Server or .onion address", "example.org");
    u.type_into("Your address (user@server)", "alice@example.org");
    u.click("Save account");
    assert!(!file.exists());

    // Ticked, with a session password: settings written, password not.
    u.click("Add account");
    u.type_into("Server or .onion address", "irc.example.net");
    u.type_into("Your address (user@server)", "bob@example.net");
    let mut f = u.w.get_account_form();
    f.password_mode = 1;
    f.password = "correct horse battery".into();
    f.remember = true;
    u.w.set_account_form(f);
    u.click("Save account");
    assert!(!u.w.get_account_dialog_open());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("bob@example.net") && !text.contains("alice@example.org"));
    assert!(!text.contains("correct horse"));

    // Connecting uses the in-memory password without asking.
    u.click("Connect bob@example.net");
    assert!(!u.w.get_password_open());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every @tr string in the .slint files has a translation in every bundled language.
#[test]
fn an_account_is_created_on_the_server_once_and_the_window_says_so() {
    let u = ui();
    u.click("Add account");
    u.type_into("Server or .onion address", "example.org");
    u.type_into("Your address (user@server)", "new@example.org");
    let create = "Create this account on the server";
    u.find(create, AccessibleRole::Checkbox)
        .invoke_accessible_default_action();
    assert_eq!(
        u.texts_containing("asks the server, over Tor, for a new account")
            .len(),
        1,
        "the form says what ticking it does"
    );
    u.click("Save account");
    let id = AccountId(1);
    let connect = |pw: &str| {
        u.click("Connect new@example.org");
        u.type_into("Password", pw);
        u.w.invoke_password_submit();
    };
    connect("pw");
    match &u.log.borrow()[..] {
        [Request::Connect { account, .. }] => assert!(account.create, "{account:?}"),
        other => panic!("unexpected requests {other:?}"),
    }
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Connecting),
    ));
    u.handle(UiEvent::Account(id, Event::AccountCreated));
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Connected { spki_sha256: None }),
    ));
    assert_eq!(
        u.texts_containing("The account was created on the server.")
            .len(),
        1
    );
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Disconnected),
    ));
    connect("pw");
    match u.log.borrow().last() {
        Some(Request::Connect { account, .. }) => {
            assert!(!account.create, "created once: later connects only log in")
        }
        other => panic!("unexpected request {other:?}"),
    }
    // An existing account's form has no such box.
    u.handle(UiEvent::Account(
        id,
        Event::State(timb_core::ConnectionState::Disconnected),
    ));
    u.click("Edit new@example.org");
    assert!(u.try_find(create, AccessibleRole::Checkbox).is_none());
    u.w.set_account_dialog_open(false);

    // A refusal is worded from the catalogue, quoting only the server's words.
    u.handle(UiEvent::Account(
        id,
        Event::Error(timb_core::AccountError::Registration(
            timb_core::RegistrationProblem::NeedsMore {
                instructions: "Give us your e-mail".into(),
                fields: "E-mail".into(),
                captcha: false,
            },
        )),
    ));
    assert_eq!(
        u.texts_containing("asks for more than a name and a password (E-mail)")
            .len(),
        1
    );
    u.app.borrow_mut().set_language("fr");
    assert!(u
        .texts_containing("asks for more than a name and a password")
        .is_empty());
    assert_eq!(u.texts_containing("Give us your e-mail").len(), 1);
}

#[test]
fn timbs_own_answers_are_translated_not_quoted_as_the_servers() {
    let u = ui();
    let id = u.with_chat();
    u.handle(UiEvent::Account(
        id,
        Event::Error(timb_core::AccountError::Notice(
            timb_core::Notice::ContactAddress,
        )),
    ));
    assert!(u.texts_containing("The server said").is_empty());
    assert_eq!(
        u.texts_containing("That is a contact's address, not a group.")
            .len(),
        1
    );
    u.handle(UiEvent::Account(
        id,
        Event::Error(timb_core::AccountError::GroupRefused {
            room: "desk@muc.example.org".into(),
            why: "conflict".into(),
        }),
    ));
    assert_eq!(
        u.texts_containing("Could not join desk@muc.example.org. The server said: conflict")
            .len(),
        1
    );
    u.app.borrow_mut().set_language("ar");
    assert!(u.texts_containing("Could not join").is_empty());
    assert_eq!(u.texts_containing("desk@muc.example.org").len(), 1);
}

/// The drop-down choices and the check boxes read the way the language does:
/// in Arabic the value and each entry of the list sit at the right, the arrow
/// and the box at the reading start.
#[test]
fn choices_and_check_boxes_follow_the_reading_direction() {
    let u = ui();
    let placement = |lang: &str| {
        u.app.borrow_mut().set_language(lang);
        let choice = u.find(
            if lang == "ar" {
                "اللغة"
            } else {
                "Language"
            },
            AccessibleRole::Combobox,
        );
        choice.invoke_accessible_default_action();
        let entry = ElementHandle::find_by_accessible_label(&u.w, "English")
            .find(|e| e.accessible_role() == Some(AccessibleRole::ListItem))
            .expect("the list shows English");
        let entry_text = entry
            .query_descendants()
            .match_accessible_role(AccessibleRole::Text)
            .find_first()
            .expect("the entry's text");
        let left_gap = entry_text.absolute_position().x - entry.absolute_position().x;
        let right_gap = (entry.absolute_position().x + entry.size().width)
            - (entry_text.absolute_position().x + entry_text.size().width);
        entry.invoke_accessible_default_action();
        (left_gap, right_gap)
    };
    let (l, r) = placement("en");
    assert!(l < r, "English entries start at the left: {l} vs {r}");
    let (l, r) = placement("ar");
    assert!(l > r, "Arabic entries start at the right: {l} vs {r}");
    assert_eq!(
        u.w.get_language_index(),
        1,
        "choosing an entry from the list takes it"
    );
    u.app.borrow_mut().set_language("ar");
    u.click("حول timb");
    let check = u.find("ابحث عن التحديثات عندما يعمل Tor", AccessibleRole::Checkbox);
    let text = u
        .texts_containing("ابحث عن التحديثات عندما يعمل Tor")
        .into_iter()
        .find(|e| e.accessible_role() == Some(AccessibleRole::Text))
        .expect("the setting's text");
    assert!(
        check.absolute_position().x > text.absolute_position().x,
        "the box is at the right of its text in Arabic"
    );
}

#[test]
fn every_string_is_translated() {
    let ui_files = [
        include_str!("../ui/types.slint"),
        include_str!("../ui/main.slint"),
        include_str!("../ui/tor-panel.slint"),
        include_str!("../ui/accounts.slint"),
        include_str!("../ui/contacts.slint"),
        include_str!("../ui/conversation.slint"),
        include_str!("../ui/otr.slint"),
        include_str!("../ui/bridges.slint"),
    ];
    let mut ids = Vec::new();
    for f in ui_files {
        for part in f.split("@tr(\"").skip(1) {
            ids.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(ids.len() > 100);
    for (lang, po) in [
        ("fr", include_str!("../lang/fr/LC_MESSAGES/timb.po")),
        ("es", include_str!("../lang/es/LC_MESSAGES/timb.po")),
        ("ru", include_str!("../lang/ru/LC_MESSAGES/timb.po")),
        ("ar", include_str!("../lang/ar/LC_MESSAGES/timb.po")),
        ("fa", include_str!("../lang/fa/LC_MESSAGES/timb.po")),
    ] {
        let mut entries = std::collections::HashMap::new();
        let mut lines = po.lines();
        while let Some(l) = lines.next() {
            if let Some(id) = l.strip_prefix("msgid \"") {
                let s = lines.next().unwrap_or_default();
                let t = s.strip_prefix("msgstr \"").unwrap_or_default();
                entries.insert(
                    id.trim_end_matches('"').to_owned(),
                    t.trim_end_matches('"').to_owned(),
                );
            }
        }
        for id in &ids {
            let t = entries
                .get(id)
                .unwrap_or_else(|| panic!("{lang}: no entry for {id:?}"));
            assert!(!t.is_empty(), "{lang}: empty translation for {id:?}");
            assert_eq!(
                t.matches("{}").count(),
                id.matches("{}").count(),
                "{lang}: placeholders differ for {id:?}"
            );
        }
    }
}

#[test]
fn tab_reaches_the_send_button() {
    let u = ui();
    u.with_chat();
    for c in "hi".chars() {
        u.key(c.to_string());
    }
    assert_eq!(u.w.get_draft(), "hi");
    u.key(Key::Tab);
    u.key(" ");
    assert_eq!(u.log.borrow().len(), 1, "Tab then Space on Send sends");
    assert_eq!(u.w.get_draft(), "");
    // In Arabic, Send is at the message's left, and still the next stop in reading order.
    u.app.borrow_mut().set_language("ar");
    u.w.invoke_focus_message();
    for c in "hi".chars() {
        u.key(c.to_string());
    }
    u.key(Key::Tab);
    u.key(" ");
    assert_eq!(
        u.log.borrow().len(),
        2,
        "Tab then Space on Send sends, in Arabic too"
    );
}

/// The first start of a new version, and a start after the launcher went back: the window
/// says so once, and the bundle records that this version's window appeared.
#[test]
fn an_update_and_a_fallback_are_each_told_once_after_the_window_appears() {
    let u = ui();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = timb_launcher::Layout::at(tmp.path());
    for v in ["0.0.9", crate::VERSION] {
        std::fs::create_dir_all(bundle.version_dir(v)).unwrap();
        std::fs::write(bundle.version_dir(v).join(timb_launcher::APP_EXE), "").unwrap();
    }
    std::fs::write(tmp.path().join("app/current"), "0.0.9\n").unwrap();
    bundle.confirm_started("0.0.9").unwrap();
    bundle.switch_to(crate::VERSION, None).unwrap();
    assert!(u.texts_containing("was updated from").is_empty());
    crate::started(&u.w, &bundle);
    assert_eq!(u.texts_containing("updated from version 0.0.9 to").len(), 1);
    assert_eq!(bundle.started().as_deref(), Some(crate::VERSION));
    // The next start says nothing.
    let again = ui();
    crate::started(&again.w, &bundle);
    assert!(again.texts_containing("was updated from").is_empty());
    assert!(
        bundle.installed("0.0.9"),
        "the fallback version was removed"
    );

    // A version that never started: the launcher went back to this one.
    std::fs::create_dir_all(bundle.version_dir("9.9.9")).unwrap();
    std::fs::write(bundle.version_dir("9.9.9").join(timb_launcher::APP_EXE), "").unwrap();
    bundle.switch_to("9.9.9", None).unwrap();
    for _ in 0..=timb_launcher::MAX_TRIES {
        bundle.choose().unwrap();
    }
    assert_eq!(bundle.current().unwrap().as_deref(), Some(crate::VERSION));
    let back = ui();
    crate::started(&back.w, &bundle);
    assert_eq!(back.texts_containing("timb 9.9.9 did not start").len(), 1);
}

/// The update check through the window: "Check now" in About asks the backend (and shows
/// Tor starting), then each state the backend reports is one sentence, the download has a
/// progress bar, a ready update offers "Restart to update", a failure is worded for a person.
#[test]
fn check_now_then_each_update_state_is_shown_in_words() {
    use crate::backend::{UpdateProblem, UpdateStatus};
    let u = ui();
    assert!(u.texts_containing("Checking for updates").is_empty());
    u.click("About timb");
    let auto = u.find(
        "Check for updates when Tor is running",
        AccessibleRole::Checkbox,
    );
    assert_eq!(auto.accessible_checked(), Some(true), "on by default");
    auto.invoke_accessible_default_action();
    assert!(!u.w.get_check_updates());
    u.click("Check for updates now");
    assert!(!u.w.get_about_open());
    {
        let log = u.log.borrow();
        assert!(log.contains(&Request::AutoUpdateCheck(false)), "{log:?}");
        assert_eq!(log.last(), Some(&Request::CheckUpdate), "{log:?}");
    }
    assert_eq!(u.texts_containing("Checking for updates over Tor").len(), 1);

    u.handle(UiEvent::Update(UpdateStatus::Downloading {
        version: "0.2.0".into(),
        done: 2_500_000,
        total: 10_000_000,
    }));
    assert_eq!(
        u.texts_containing("timb 0.2.0 is available (10.0 MB)")
            .len(),
        1
    );
    assert!((u.w.get_update_progress() - 0.25).abs() < 1e-6);
    assert!(u
        .try_find("Restart to update", AccessibleRole::Button)
        .is_none());

    u.handle(UiEvent::Update(UpdateStatus::Ready {
        version: "0.2.0".into(),
    }));
    assert_eq!(u.texts_containing("timb 0.2.0 is ready").len(), 1);
    // Not in a bundle's folders (the test binary): restarting says so instead.
    u.click("Restart to update");
    assert_eq!(
        u.texts_containing("download the new version by hand").len(),
        1
    );

    u.handle(UiEvent::Update(UpdateStatus::Failed(UpdateProblem::Check(
        timb_update::Problem::HeldBack,
    ))));
    assert_eq!(
        u.texts_containing("someone may be holding updates back from you")
            .len(),
        1
    );
    assert!(
        u.texts_containing("timb 0.2.0").is_empty(),
        "a stale state stayed"
    );
}

/// What the sandbox achieved is told as it is: nothing until the binary's start-up sets
/// it, one sentence per state in About, and a loud banner above the accounts when the
/// user turned it off.
#[test]
fn the_sandbox_state_is_told_as_it_is() {
    use timb_sandbox::{Files, Status};
    let u = ui();
    u.click("About timb");
    assert!(
        u.texts_containing("sandbox").is_empty(),
        "unknown says nothing"
    );
    u.click("Close about");
    let cases = [
        (
            Status::Confined,
            "timb runs in a sandbox: even if an attacker",
        ),
        (
            Status::Partial {
                files: Files::Partly,
                syscalls: true,
            },
            "timb runs in a partial sandbox",
        ),
        (
            Status::Partial {
                files: Files::Full,
                syscalls: false,
            },
            "timb runs in a partial sandbox",
        ),
        (
            Status::Partial {
                files: Files::None,
                syscalls: true,
            },
            "kernel has no Landlock",
        ),
        (
            Status::Disabled,
            "The sandbox is turned off (TIMB_NO_SANDBOX)",
        ),
        (
            Status::Unsupported,
            "timb is not sandboxed on this system yet",
        ),
    ];
    for (status, words) in cases {
        u.w.set_sandbox_state(crate::view::sandbox_state(&status));
        let banner = u.texts_containing(words).len();
        assert_eq!(
            banner,
            usize::from(status == Status::Disabled),
            "{status:?}: only a sandbox turned off is shown outside About"
        );
        u.click("About timb");
        // The view behind a dialog is hidden, so only About's sentence is there.
        assert_eq!(u.texts_containing(words).len(), 1, "{status:?}");
        u.click("Close about");
    }
}

/// "Restart to update" that cannot start the launcher (here: there is none; in the
/// binary: no helper and a sandbox that runs no program) says the update is installed
/// and how to start it, not that the disk failed.
#[test]
fn a_restart_that_cannot_start_the_launcher_says_to_restart_by_hand() {
    use crate::backend::UpdateStatus;
    let u = ui();
    let tmp = tempfile::tempdir().unwrap();
    u.app.borrow_mut().bundle = Some(timb_launcher::Layout::at(tmp.path()));
    u.handle(UiEvent::Update(UpdateStatus::Ready {
        version: "0.2.0".into(),
    }));
    u.click("Restart to update");
    assert_eq!(
        u.texts_containing("timb 0.2.0 is installed. Close timb and open it again")
            .len(),
        1
    );
}

fn bridges_asked(log: &[Request]) -> Vec<Vec<String>> {
    log.iter()
        .filter_map(|r| match r {
            Request::SetBridges(c) => Some(c.bridges.iter().map(|b| b.line().to_owned()).collect()),
            _ => None,
        })
        .collect()
}

const PLAIN_BRIDGE: &str = "192.0.2.3:443 0123456789ABCDEF0123456789ABCDEF01234567";
const OBFS4_BRIDGE: &str = "obfs4 198.51.100.7:9001 89ABCDEF0123456789ABCDEF0123456789ABCDEF cert=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA iat-mode=0";

impl Ui {
    /// The texts shown now that contain `needle`.
    fn shown(&self, needle: &str) -> Vec<String> {
        self.texts_containing(needle)
            .iter()
            .filter_map(|e| e.accessible_label().map(|l| l.to_string()))
            .collect()
    }

    /// The bridge lists the window asked the backend to use, in order.
    fn bridges_asked(&self) -> Vec<Vec<String>> {
        bridges_asked(&self.log.borrow())
    }

    /// Opens Bridges and picks "Bridge lines I paste".
    fn open_pasted_bridges(&self) {
        self.click("Bridges: how timb reaches Tor");
        assert!(self.w.get_bridges_open());
        let choice = self.find("Bridges", AccessibleRole::Combobox);
        for _ in 0..3 {
            if self.w.get_bridges_mode() >= 1 {
                break;
            }
            choice.invoke_accessible_increment_action();
        }
        assert_eq!(self.w.get_bridges_mode(), 1);
    }
}

#[test]
fn bridge_lines_are_checked_as_typed_and_used_only_once_chosen() {
    let u = ui();
    assert!(u.bridges_asked().is_empty(), "the backend starts with none");
    u.open_pasted_bridges();
    // A malformed line: its number and what is wrong, in words; "Use" does nothing.
    u.type_into("Bridge lines", &format!("{PLAIN_BRIDGE}\n192.0.2.4 0123"));
    assert_eq!(
        u.shown("Line 2:"),
        ["Line 2: the address must be an IP address and port, like 192.0.2.3:443."]
    );
    u.type_into(
        "Bridge lines",
        "bridges.example.org:443 0123456789ABCDEF0123456789ABCDEF01234567",
    );
    assert!(
        u.shown("Line 1:")[0].contains("not a name"),
        "{:?}",
        u.shown("Line 1:")
    );
    u.type_into(
        "Bridge lines",
        "obfs4 198.51.100.7:9001 89ABCDEF0123456789ABCDEF0123456789ABCDEF iat-mode=0",
    );
    assert!(u.shown("Line 1:")[0].contains("obfs4 settings"));
    u.click("Use these settings");
    assert!(u.w.get_bridges_open(), "a refused list is not taken");
    assert!(u.bridges_asked().is_empty());

    // Fixed: the error goes, the count comes, and "Use" hands both to the backend.
    u.type_into(
        "Bridge lines",
        &format!("  Bridge {OBFS4_BRIDGE}\n\n{PLAIN_BRIDGE}\n"),
    );
    assert!(u.shown("Line ").is_empty(), "{:?}", u.shown("Line "));
    assert_eq!(u.shown("all valid"), ["2 bridges, all valid."]);
    u.click("Use these settings");
    assert!(!u.w.get_bridges_open());
    assert_eq!(
        u.bridges_asked().last().unwrap(),
        &[OBFS4_BRIDGE, PLAIN_BRIDGE]
    );

    // The Tor panel says a bridge will be used, then that it is being used.
    assert_eq!(
        u.shown("through a bridge"),
        ["Tor will be reached through a bridge."]
    );
    let starting = |bridges: usize| {
        u.handle(UiEvent::Tor(crate::backend::TorStatus::Route { bridges }));
        u.handle(UiEvent::Tor(crate::backend::TorStatus::Starting {
            fraction: 0.05,
            phase: timb_tor::TorPhase::Reaching,
        }));
    };
    // A start that took no bridge (it began before they were set) is not said to use one:
    // the panel follows the start, not the setting.
    starting(0);
    assert_eq!(u.shown("%"), ["Reaching the Tor network… 5%"]);
    starting(2);
    assert_eq!(
        u.shown("%"),
        ["Reaching the Tor network through a bridge… 5%"]
    );
    let blocked = || {
        u.handle(UiEvent::Tor(crate::backend::TorStatus::Failed {
            kind: crate::backend::TorFailureKind::Blocked,
            detail: String::new(),
        }))
    };
    blocked();
    assert!(
        u.shown("Tor could not get through the bridges you set")
            .len()
            == 1
    );

    // Back to none: the next start goes direct, and the blocked help points at Bridges.
    u.click("Bridges: how timb reaches Tor");
    assert_eq!(
        u.w.get_bridges_lines(),
        format!("{OBFS4_BRIDGE}\n{PLAIN_BRIDGE}")
    );
    u.find("Bridges", AccessibleRole::Combobox)
        .invoke_accessible_decrement_action();
    assert_eq!(u.w.get_bridges_mode(), 0);
    u.click("Use these settings");
    assert_eq!(u.bridges_asked().last().unwrap(), &Vec::<String>::new());
    u.handle(UiEvent::Tor(crate::backend::TorStatus::Route {
        bridges: 0,
    }));
    blocked();
    assert_eq!(
        u.shown("block Tor"),
        ["This network seems to block Tor. A bridge can get you through: press Bridges, paste bridge lines, then try again."]
    );
    // Cancel keeps what was chosen.
    u.open_pasted_bridges();
    u.click("Cancel");
    assert!(!u.w.get_bridges_open());
    assert_eq!(u.bridges_asked().last().unwrap(), &Vec::<String>::new());
}

#[test]
fn bridge_lines_reach_the_profile_only_when_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridges.toml");
    let u = ui();
    u.app.borrow_mut().profile_root = Some(dir.path().to_owned());
    u.open_pasted_bridges();
    u.type_into("Bridge lines", PLAIN_BRIDGE);
    u.click("Use these settings");
    assert!(!file.exists(), "not ticked: not written");
    let told = |log: &[Request]| {
        log.iter().rev().find_map(|r| match r {
            Request::SetBridges(c) => Some((c.bridges.len(), c.chosen, c.remember)),
            _ => None,
        })
    };
    assert_eq!(told(&u.log.borrow()), Some((1, true, false)));

    u.open_pasted_bridges();
    u.w.set_bridges_remember(true);
    u.click("Use these settings");
    let saved = || std::fs::read_to_string(&file).unwrap_or_default();
    assert!(saved().contains(PLAIN_BRIDGE), "{}", saved());
    assert_eq!(told(&u.log.borrow()), Some((1, true, true)));
    // Nothing of it in the accounts file (an older timb would refuse that file).
    let accounts =
        std::fs::read_to_string(crate::accounts::file_path(dir.path())).unwrap_or_default();
    assert!(!accounts.contains("192.0.2.3"), "{accounts}");

    // The next start has them back, and tells the backend before anything connects.
    let again = |root: &std::path::Path| {
        let w = MainWindow::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let app = App::attach(
            &w,
            Box::new(Recorder(log.clone())),
            Some(root.to_owned()),
            Remembered::default(),
        );
        (w, log, app)
    };
    let (w, log, _app) = again(dir.path());
    assert_eq!(
        bridges_asked(&log.borrow()),
        [vec![PLAIN_BRIDGE.to_owned()]]
    );
    assert_eq!(w.get_bridges_in_use(), 1);
    assert!(!log
        .borrow()
        .iter()
        .any(|r| matches!(r, Request::Connect { .. } | Request::RetryTor)));

    // A remembered file that no longer reads: bridges stay chosen, none usable (the
    // backend then refuses to start Tor rather than going direct).
    std::fs::write(&file, "mode = [").unwrap();
    let (_w, log, _app) = again(dir.path());
    assert_eq!(told(&log.borrow()), Some((0, true, true)));

    // Unticked again: the lines leave the profile.
    std::fs::write(
        &file,
        format!("mode = \"pasted\"\nlines = [\"{PLAIN_BRIDGE}\"]\n"),
    )
    .unwrap();
    u.open_pasted_bridges();
    u.w.set_bridges_remember(false);
    u.click("Use these settings");
    assert!(!file.exists());
}
