//! A minimal owned element tree and an always-escaping serializer.
//!
//! Outgoing XML is only ever produced through [`Element::to_xml`], so no
//! caller can splice unescaped user text into the stream.

use std::fmt::Write as _;

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAMS_ERR: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
pub const NS_HINTS: &str = "urn:xmpp:hints";
pub const NS_CB: &str = "urn:xmpp:sasl-cb:0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name, without prefix.
    pub name: String,
    /// Resolved namespace URI ("" if none).
    pub ns: String,
    /// Attributes as written (qualified name), namespace declarations removed.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn new(name: &str, ns: &str) -> Element {
        Element {
            name: name.to_owned(),
            ns: ns.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets an attribute.
    pub fn with_attr(mut self, k: &str, v: impl Into<String>) -> Element {
        self.set_attr(k, v);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, c: Element) -> Element {
        self.children.push(Node::Element(c));
        self
    }

    /// Builder: appends text.
    pub fn with_text(mut self, t: impl Into<String>) -> Element {
        self.children.push(Node::Text(t.into()));
        self
    }

    pub fn set_attr(&mut self, k: &str, v: impl Into<String>) {
        let v = v.into();
        if let Some(slot) = self.attrs.iter_mut().find(|(n, _)| n == k) {
            slot.1 = v;
        } else {
            self.attrs.push((k.to_owned(), v));
        }
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, ns))
    }

    pub fn has_child(&self, name: &str, ns: &str) -> bool {
        self.child(name, ns).is_some()
    }

    /// Concatenated direct text children.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Serializes with `parent_ns` as the namespace already in scope, so
    /// stanzas written inside the stream omit `xmlns='jabber:client'`.
    pub fn to_xml_in(&self, parent_ns: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, parent_ns);
        out
    }

    /// Serializes a top-level stanza inside a `jabber:client` stream.
    pub fn to_xml(&self) -> String {
        self.to_xml_in(NS_CLIENT)
    }

    fn write(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_into(out, &self.ns, true);
            out.push('\'');
        }
        for (k, v) in &self.attrs {
            let _ = write!(out, " {k}='");
            escape_into(out, v, true);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Node::Element(e) => e.write(out, &self.ns),
                Node::Text(t) => escape_into(out, t, false),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes markup characters and replaces characters XML 1.0 cannot carry
/// (controls, lone surrogates can't occur in `str`) with U+FFFD, so user text
/// can never break the stream or be used to inject elements.
pub fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' if attr => out.push_str("&apos;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' | '\n' | '\r' if attr => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, true);
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_markup() {
        let e = Element::new("message", NS_CLIENT)
            .with_attr("to", "a'b\"c<d>&e")
            .with_child(Element::new("body", NS_CLIENT).with_text("</body><x/>&amp;\u{0}"));
        assert_eq!(
            e.to_xml(),
            "<message to='a&apos;b&quot;c&lt;d&gt;&amp;e'><body>&lt;/body&gt;&lt;x/&gt;&amp;amp;\u{FFFD}</body></message>"
        );
    }

    #[test]
    fn namespaces_declared_only_when_changed() {
        let e = Element::new("iq", NS_CLIENT).with_child(
            Element::new("query", NS_ROSTER).with_child(Element::new("item", NS_ROSTER)),
        );
        assert_eq!(
            e.to_xml(),
            "<iq><query xmlns='jabber:iq:roster'><item/></query></iq>"
        );
        assert_eq!(
            Element::new("auth", NS_SASL).to_xml(),
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
        );
    }
}
