//! Creating the account on the server: XEP-0077 in-band registration, done
//! once, inside TLS, before the first login.
//!
//! timb fills only a name and a password. A form that asks for more (an
//! e-mail address, a CAPTCHA per XEP-0158, any other required field) is not
//! half-filled: the account is not created and the server's instructions and
//! the fields it wants are shown, so the user can create it another way.
//! Nothing of the form is kept or logged.

use std::time::Duration;

use timb_core::RegistrationProblem;

use crate::connect::{read_stanza, truncate};
use crate::error::XmppError;
use crate::stream::XmlStream;
use crate::xml::*;
use crate::{BoxStream, XmppConfig};

pub const NS_REGISTER: &str = "jabber:iq:register";
/// The stream feature a server that allows in-band registration advertises.
pub const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
pub const NS_DATA: &str = "jabber:x:data";
const NS_CAPTCHA: &str = "urn:xmpp:captcha";
const NS_MEDIA: &str = "urn:xmpp:media-element";
/// What the server's instructions and field names are clipped to.
const MAX_TEXT: usize = 300;
const MAX_FIELDS: usize = 32;

/// The server's registration form, as far as timb uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub instructions: String,
    /// Data form (XEP-0004) fields, when the server sent one; it takes
    /// precedence over the legacy elements (XEP-0077 §6).
    data: Option<Vec<Field>>,
    /// The account already exists and this stream is logged in (not used
    /// before authentication, but a server may say so).
    pub registered: bool,
    /// Legacy elements the server asks for, other than username and password.
    legacy_extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    var: String,
    label: String,
    kind: String,
    required: bool,
    /// The first value, echoed for hidden fields (FORM_TYPE, challenge ids).
    value: String,
}

impl Form {
    /// Reads the `<query/>` of the server's answer to our `get`.
    pub fn parse(query: &Element) -> Form {
        let instructions = query
            .child("instructions", NS_REGISTER)
            .map(|i| truncate(i.text().trim(), MAX_TEXT))
            .unwrap_or_default();
        let registered = query.has_child("registered", NS_REGISTER);
        let legacy_extra = query
            .elements()
            .filter(|e| e.ns == NS_REGISTER)
            .map(|e| e.name.as_str())
            .filter(|n| !matches!(*n, "instructions" | "registered" | "username" | "password"))
            .take(MAX_FIELDS)
            .map(str::to_owned)
            .collect();
        let data = query.child("x", NS_DATA).map(|x| {
            x.elements()
                .filter(|f| f.is("field", NS_DATA))
                .take(MAX_FIELDS)
                .map(|f| {
                    let var = f.attr("var").unwrap_or_default().to_owned();
                    let label = f.attr("label").unwrap_or(var.as_str()).to_owned();
                    Field {
                        kind: f.attr("type").unwrap_or("text-single").to_owned(),
                        required: f.has_child("required", NS_DATA)
                            || f.has_child("media", NS_MEDIA),
                        value: f
                            .child("value", NS_DATA)
                            .map(|v| v.text())
                            .unwrap_or_default(),
                        var,
                        label: truncate(&label, 80),
                    }
                })
                .collect()
        });
        Form {
            instructions,
            data,
            registered,
            legacy_extra,
        }
    }

    /// Whether the form is a CAPTCHA (XEP-0158).
    fn captcha(&self) -> bool {
        self.data.as_ref().is_some_and(|fields| {
            fields
                .iter()
                .any(|f| f.var == "FORM_TYPE" && f.value == NS_CAPTCHA)
        })
    }

    /// The fields the server requires that timb does not fill, by label.
    pub fn unfilled(&self) -> Vec<String> {
        match &self.data {
            Some(fields) => fields
                .iter()
                .filter(|f| f.required && !matches!(f.kind.as_str(), "hidden" | "fixed"))
                .filter(|f| !matches!(f.var.as_str(), "username" | "password"))
                .map(|f| f.label.clone())
                .collect(),
            None => self.legacy_extra.clone(),
        }
    }

    /// What to do with this form: a `<query/>` to submit, or why not.
    pub fn fill(&self, username: &str, password: &str) -> Result<Element, RegistrationProblem> {
        let unfilled = self.unfilled();
        let captcha = self.captcha();
        let offers = |var: &str| match &self.data {
            Some(fields) => fields.iter().any(|f| f.var == var),
            None => true,
        };
        if captcha || !unfilled.is_empty() || !offers("username") || !offers("password") {
            return Err(RegistrationProblem::NeedsMore {
                instructions: self.instructions.clone(),
                fields: truncate(&unfilled.join(", "), MAX_TEXT),
                captcha,
            });
        }
        let mut q = Element::new("query", NS_REGISTER);
        match &self.data {
            Some(fields) => {
                let mut x = Element::new("x", NS_DATA).with_attr("type", "submit");
                for f in fields {
                    let value = match f.var.as_str() {
                        "username" => username,
                        "password" => password,
                        _ if f.kind == "hidden" => f.value.as_str(),
                        _ => continue,
                    };
                    x = x.with_child(
                        Element::new("field", NS_DATA)
                            .with_attr("var", f.var.clone())
                            .with_child(Element::new("value", NS_DATA).with_text(value)),
                    );
                }
                q = q.with_child(x);
            }
            None => {
                q = q
                    .with_child(Element::new("username", NS_REGISTER).with_text(username))
                    .with_child(Element::new("password", NS_REGISTER).with_text(password));
            }
        }
        Ok(q)
    }
}

/// Creates `cfg`'s account on a TLS-protected stream that is not yet
/// authenticated, whose features are `features`. On success the stream
/// continues to the login as usual.
pub async fn create(
    xs: &mut XmlStream<BoxStream>,
    features: &Element,
    cfg: &XmppConfig,
    t: Duration,
) -> Result<(), XmppError> {
    let reg = |p| XmppError::Registration(p);
    if !features.has_child("register", NS_REGISTER_FEATURE) {
        return Err(reg(RegistrationProblem::NotOffered));
    }
    let username = cfg.jid.split('@').next().unwrap_or_default();
    let id = crate::random_id();
    xs.send(
        &Element::new("iq", NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.clone())
            .with_child(Element::new("query", NS_REGISTER)),
    )
    .await?;
    let answer = answer_to(xs, &id, t).await?;
    let form = match (answer.attr("type"), answer.child("query", NS_REGISTER)) {
        (Some("result"), Some(q)) => Form::parse(q),
        (Some("error"), _) => return Err(reg(refusal(&answer))),
        _ => {
            return Err(XmppError::Protocol(
                "the server answered the registration request without a form".into(),
            ))
        }
    };
    let query = form.fill(username, &cfg.password).map_err(reg)?;
    let id = crate::random_id();
    xs.send(
        &Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(query),
    )
    .await?;
    let answer = answer_to(xs, &id, t).await?;
    match answer.attr("type") {
        Some("result") => Ok(()),
        _ => Err(reg(refusal(&answer))),
    }
}

/// Reads until the answer to our iq `id`; before login nothing else is
/// expected, so anything else is a protocol error.
async fn answer_to(
    xs: &mut XmlStream<BoxStream>,
    id: &str,
    t: Duration,
) -> Result<Element, XmppError> {
    let e = read_stanza(xs, t).await?;
    if e.is("iq", NS_CLIENT) && e.attr("id") == Some(id) {
        Ok(e)
    } else {
        Err(XmppError::Protocol(format!(
            "unexpected <{}> during registration",
            e.name
        )))
    }
}

/// A registration error in the user's terms: XEP-0077 §3.1's conditions.
fn refusal(e: &Element) -> RegistrationProblem {
    let err = e.child("error", NS_CLIENT);
    let cond = err
        .and_then(|err| {
            err.elements()
                .find(|c| c.ns == NS_STANZAS && c.name != "text")
        })
        .map(|c| c.name.as_str())
        .unwrap_or("undefined-condition");
    let text = err
        .and_then(|err| err.child("text", NS_STANZAS))
        .map(|t| truncate(t.text().trim(), MAX_TEXT))
        .unwrap_or_default();
    match cond {
        "conflict" => RegistrationProblem::Taken,
        "not-allowed" | "forbidden" | "service-unavailable" | "feature-not-implemented"
            if text.is_empty() =>
        {
            RegistrationProblem::NotOffered
        }
        _ if text.is_empty() => RegistrationProblem::Refused(cond.to_owned()),
        _ => RegistrationProblem::Refused(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One element, parsed by the real stream parser after a stream header.
    fn parse(xml: &str) -> Element {
        use tokio::io::AsyncWriteExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let doc = format!(
                "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                 xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>{xml}"
            );
            server.write_all(doc.as_bytes()).await.unwrap();
            let mut xs = XmlStream::new(client, 1 << 20);
            loop {
                if let crate::stream::Frame::Stanza(e) = xs.next().await.unwrap() {
                    return e;
                }
            }
        })
    }

    #[test]
    fn a_name_and_password_form_is_filled_legacy_and_data() {
        let legacy = Form::parse(&parse(
            "<query xmlns='jabber:iq:register'><instructions>Choose</instructions><username/><password/></query>",
        ));
        let q = legacy.fill("ann", "pw").unwrap();
        assert_eq!(q.child("username", NS_REGISTER).unwrap().text(), "ann");
        assert_eq!(q.child("password", NS_REGISTER).unwrap().text(), "pw");

        let data = Form::parse(&parse(
            "<query xmlns='jabber:iq:register'><username/><password/><x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>\
             <field var='username' type='text-single' label='Name'><required/></field>\
             <field var='password' type='text-private' label='Password'><required/></field>\
             <field var='email' type='text-single' label='E-mail'/></x></query>",
        ));
        let q = data.fill("ann", "pw").unwrap();
        let x = q.child("x", NS_DATA).unwrap();
        let vals: Vec<(String, String)> = x
            .elements()
            .map(|f| {
                (
                    f.attr("var").unwrap().to_owned(),
                    f.child("value", NS_DATA).unwrap().text(),
                )
            })
            .collect();
        assert_eq!(
            vals,
            [
                ("FORM_TYPE".into(), "jabber:iq:register".into()),
                ("username".into(), "ann".into()),
                ("password".into(), "pw".into()),
            ],
            "optional fields are left out, hidden ones echoed"
        );
    }

    #[test]
    fn a_form_asking_for_more_is_refused_with_its_words() {
        let f = Form::parse(&parse(
            "<query xmlns='jabber:iq:register'><instructions>Give us your mail</instructions><x xmlns='jabber:x:data' type='form'>\
             <field var='username'><required/></field><field var='password'><required/></field>\
             <field var='email' label='E-mail address'><required/></field></x></query>",
        ));
        assert_eq!(
            f.fill("ann", "pw"),
            Err(RegistrationProblem::NeedsMore {
                instructions: "Give us your mail".into(),
                fields: "E-mail address".into(),
                captcha: false,
            })
        );
        let legacy = Form::parse(&parse(
            "<query xmlns='jabber:iq:register'><username/><password/><email/></query>",
        ));
        assert!(matches!(
            legacy.fill("ann", "pw"),
            Err(RegistrationProblem::NeedsMore { fields, .. }) if fields == "email"
        ));
    }

    #[test]
    fn a_captcha_is_never_filled() {
        let f = Form::parse(&parse(
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:captcha</value></field>\
             <field var='username'><required/></field><field var='password'><required/></field>\
             <field var='ocr' label='Enter the text you see'><media xmlns='urn:xmpp:media-element'/></field></x></query>",
        ));
        assert!(matches!(
            f.fill("ann", "pw"),
            Err(RegistrationProblem::NeedsMore { captcha: true, fields, .. }) if fields == "Enter the text you see"
        ));
    }

    #[test]
    fn errors_become_problems_a_user_can_act_on() {
        let e = |inner: &str| {
            refusal(&parse(&format!(
                "<iq xmlns='jabber:client' type='error'><error type='cancel'>{inner}</error></iq>"
            )))
        };
        assert_eq!(
            e("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            RegistrationProblem::Taken
        );
        assert_eq!(
            e("<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            RegistrationProblem::NotOffered
        );
        assert_eq!(
            e("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Password too weak</text>"),
            RegistrationProblem::Refused("Password too weak".into())
        );
    }
}
