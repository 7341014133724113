//! The incremental XML stream parser.
//!
//! quick-xml pulls bytes through [`Bounded`], which counts every byte consumed
//! since the last completed top-level stanza and fails once that exceeds the
//! stanza limit. quick-xml's event buffer only ever holds bytes it consumed,
//! so a hostile server can make us hold at most `max_stanza` bytes of raw input
//! plus a bounded element tree ([`ALLOC_FACTOR`] × `max_stanza`), however the
//! bytes are shaped (one huge text node, deep nesting, many tiny elements).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

use crate::error::XmppError;
use crate::xml::{Element, Node, NS_STREAM};

/// Default bound on one stanza's serialized size. Prosody's default is 256 KiB
/// for c2s; we accept the same.
pub const DEFAULT_MAX_STANZA: usize = 256 * 1024;
/// How long one stanza may take to arrive, from its first element to its end. The size
/// limit bounds memory; this bounds time: a server trickling a stanza a byte a second would
/// otherwise hold the account for days (256 KiB at 1 B/s). A whole 256 KiB stanza at
/// 1 KiB/s, slower than any usable Tor circuit, still arrives in time.
pub const DEFAULT_STANZA_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);
/// The element tree built for one stanza may cost at most this many times the
/// stanza limit (each node is charged a fixed overhead plus its strings).
pub const ALLOC_FACTOR: usize = 4;
/// Charged per element/text node on top of its strings.
const NODE_COST: usize = 64;
/// Deeper nesting than any real stanza; stops recursion-heavy trees.
pub const MAX_DEPTH: usize = 64;
const READ_CHUNK: usize = 8 * 1024;

/// Byte source that refuses to deliver more than `limit` bytes between
/// [`Bounded::mark`] calls.
pub struct Bounded<S> {
    inner: S,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    since_mark: usize,
    limit: usize,
    over: bool,
    /// When the stanza being read began (its first element), and how long it may take.
    begun: Option<tokio::time::Instant>,
    deadline: std::time::Duration,
    slow: bool,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, limit: usize) -> Bounded<S> {
        Bounded {
            inner,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
            since_mark: 0,
            limit,
            over: false,
            begun: None,
            deadline: DEFAULT_STANZA_DEADLINE,
            slow: false,
        }
    }

    fn mark(&mut self) {
        self.since_mark = 0;
        self.begun = None;
    }

    /// A stanza's first element was read: its deadline runs from now.
    fn begin(&mut self) {
        self.begun.get_or_insert_with(tokio::time::Instant::now);
    }

    pub fn has_buffered(&self) -> bool {
        self.pos < self.filled
    }

    /// Gives back the transport; fails if bytes were read ahead, which
    /// before a TLS handshake would mean the server (or a man in the middle)
    /// injected plaintext.
    pub fn into_inner(self) -> Result<S, XmppError> {
        if self.has_buffered() {
            return Err(XmppError::Protocol(
                "unexpected data after <proceed/> before TLS".into(),
            ));
        }
        Ok(self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let avail = ready!(Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = avail.len().min(out.remaining());
        out.put_slice(&avail[..n]);
        Pin::new(this).consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncBufRead for Bounded<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.since_mark > this.limit {
            this.over = true;
            return Poll::Ready(Err(io::Error::other("stanza too large")));
        }
        // Checked at each read, which a trickling server keeps causing; a server that
        // stops sending altogether is the session's keepalive's to notice.
        if this.begun.is_some_and(|t| t.elapsed() > this.deadline) {
            this.slow = true;
            return Poll::Ready(Err(io::Error::other("stanza too slow")));
        }
        if this.pos >= this.filled {
            let mut rb = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            this.filled = rb.filled().len();
            this.pos = 0;
        }
        Poll::Ready(Ok(&this.buf[this.pos..this.filled]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.filled);
        this.since_mark += amt;
    }
}

/// What the parser hands up: the stream header, one complete top-level
/// stanza/nonza, or the end of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `<stream:stream>` with its attributes; no children.
    StreamStart(Element),
    Stanza(Element),
    StreamEnd,
}

pub struct XmlStream<S> {
    reader: NsReader<Bounded<ReadHalf<S>>>,
    /// `None` once handed to a separate writer task by [`XmlStream::split`].
    writer: Option<WriteHalf<S>>,
    buf: Vec<u8>,
    /// Open elements of the stanza being built; empty between stanzas.
    stack: Vec<Element>,
    in_stream: bool,
    /// Remaining tree budget for the current stanza.
    budget: usize,
    max_stanza: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlStream<S> {
    pub fn new(inner: S, max_stanza: usize) -> XmlStream<S> {
        let (r, w) = tokio::io::split(inner);
        Self::from_bounded(Bounded::new(r, max_stanza), Some(w), max_stanza)
    }

    fn from_bounded(
        mut b: Bounded<ReadHalf<S>>,
        writer: Option<WriteHalf<S>>,
        max_stanza: usize,
    ) -> XmlStream<S> {
        b.mark();
        b.over = false;
        let mut reader = NsReader::from_reader(b);
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.expand_empty_elements = false;
        cfg.allow_unmatched_ends = false;
        cfg.check_comments = true;
        cfg.allow_dangling_amp = false;
        XmlStream {
            reader,
            writer,
            buf: Vec::new(),
            stack: Vec::new(),
            in_stream: false,
            budget: max_stanza * ALLOC_FACTOR,
            max_stanza,
        }
    }

    /// Stream restart (after SASL success): a fresh parser, keeping any bytes
    /// already read from the transport.
    pub fn restart(self) -> XmlStream<S> {
        let max = self.max_stanza;
        Self::from_bounded(self.reader.into_inner(), self.writer, max)
    }

    /// The transport, for the TLS upgrade.
    pub fn into_inner(self) -> Result<S, XmppError> {
        let r = self.reader.into_inner().into_inner()?;
        let w = self
            .writer
            .ok_or_else(|| XmppError::Protocol("stream already split".into()))?;
        Ok(r.unsplit(w))
    }

    /// How long each stanza may take from its first element to its end (tests shorten it).
    pub fn set_stanza_deadline(&mut self, d: std::time::Duration) {
        self.reader.get_mut().deadline = d;
    }

    /// Separates the writer so reading can run in its own task.
    pub fn split(mut self) -> (XmlStream<S>, Option<WriteHalf<S>>) {
        let w = self.writer.take();
        (self, w)
    }

    /// Whether bytes were read ahead of the last frame.
    pub fn has_buffered(&mut self) -> bool {
        self.reader.get_mut().has_buffered()
    }

    /// Writes raw, already-serialized XML and flushes it.
    pub async fn send_raw(&mut self, xml: &str) -> Result<(), XmppError> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| XmppError::Protocol("stream already split".into()))?;
        w.write_all(xml.as_bytes()).await.map_err(io_err)?;
        w.flush().await.map_err(io_err)
    }

    pub async fn send(&mut self, e: &Element) -> Result<(), XmppError> {
        self.send_raw(&e.to_xml()).await
    }

    /// Reads until one complete frame is available. Not cancel-safe: a
    /// cancelled call leaves the parser in an undefined state, so callers
    /// either run it in a dedicated task or drop the stream on timeout.
    pub async fn next(&mut self) -> Result<Frame, XmppError> {
        loop {
            self.buf.clear();
            let ev = match self.reader.read_event_into_async(&mut self.buf).await {
                Ok(ev) => ev,
                Err(e) => {
                    if self.reader.get_mut().over {
                        return Err(XmppError::StanzaTooLarge(self.max_stanza));
                    }
                    if self.reader.get_mut().slow {
                        let secs = self.reader.get_mut().deadline.as_secs();
                        return Err(XmppError::StanzaTooSlow(secs));
                    }
                    return Err(map_xml_err(e));
                }
            };
            match ev {
                Event::Decl(_) if !self.in_stream && self.stack.is_empty() => {}
                Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => {
                    return Err(XmppError::Xml(
                        "comments, processing instructions and DTDs are not allowed in XMPP".into(),
                    ));
                }
                // Mid-stream or not, EOF is the peer going away.
                Event::Eof => return Err(XmppError::Closed),
                Event::Start(s) => {
                    let el = start_element(&self.reader, &s)?;
                    if !self.in_stream {
                        if !el.is("stream", NS_STREAM) {
                            return Err(XmppError::Xml(format!(
                                "expected a stream header, got <{}>",
                                el.name
                            )));
                        }
                        self.in_stream = true;
                        self.mark();
                        return Ok(Frame::StreamStart(el));
                    }
                    self.charge(cost(&el))?;
                    self.reader.get_mut().begin();
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(XmppError::Xml("elements nested too deeply".into()));
                    }
                    self.stack.push(el);
                }
                Event::Empty(s) => {
                    let el = start_element(&self.reader, &s)?;
                    if !self.in_stream {
                        return Err(XmppError::Xml(
                            "expected a stream header, got an empty element".into(),
                        ));
                    }
                    self.charge(cost(&el))?;
                    if let Some(f) = self.close(el) {
                        return Ok(f);
                    }
                }
                Event::End(_) => match self.stack.pop() {
                    Some(el) => {
                        if let Some(f) = self.close(el) {
                            return Ok(f);
                        }
                    }
                    None => {
                        self.in_stream = false;
                        return Ok(Frame::StreamEnd);
                    }
                },
                Event::Text(t) => {
                    let s = std::str::from_utf8(&t)
                        .map_err(|_| XmppError::InvalidUtf8)?
                        .to_owned();
                    self.text(&s)?;
                }
                Event::CData(t) => {
                    let s = std::str::from_utf8(&t)
                        .map_err(|_| XmppError::InvalidUtf8)?
                        .to_owned();
                    self.text(&s)?;
                }
                Event::GeneralRef(r) => {
                    let c = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => c,
                            _ => return Err(XmppError::Xml("invalid character reference".into())),
                        }
                    } else {
                        match &*r {
                            b"lt" => '<',
                            b"gt" => '>',
                            b"amp" => '&',
                            b"apos" => '\'',
                            b"quot" => '"',
                            _ => return Err(XmppError::Xml("undefined entity reference".into())),
                        }
                    };
                    let mut tmp = [0u8; 4];
                    let s = c.encode_utf8(&mut tmp).to_owned();
                    self.text(&s)?;
                }
            }
        }
    }

    fn mark(&mut self) {
        self.reader.get_mut().mark();
        self.budget = self.max_stanza * ALLOC_FACTOR;
    }

    fn charge(&mut self, n: usize) -> Result<(), XmppError> {
        match self.budget.checked_sub(n) {
            Some(b) => {
                self.budget = b;
                Ok(())
            }
            None => Err(XmppError::StanzaTooLarge(self.max_stanza)),
        }
    }

    fn text(&mut self, s: &str) -> Result<(), XmppError> {
        if self.stack.is_empty() {
            // Whitespace keep-alives between stanzas; they must not count
            // towards the next stanza, or a long idle stream would trip the limit.
            if s.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
                if self.in_stream {
                    self.mark();
                }
                return Ok(());
            }
            return Err(XmppError::Xml("text outside any stanza".into()));
        }
        self.charge(s.len() + NODE_COST)?;
        let Some(top) = self.stack.last_mut() else {
            return Err(XmppError::Xml("text outside any stanza".into()));
        };
        if let Some(Node::Text(prev)) = top.children.last_mut() {
            prev.push_str(s);
        } else {
            top.children.push(Node::Text(s.to_owned()));
        }
        Ok(())
    }

    /// Attaches a finished element to its parent, or returns it as a frame if
    /// it was top-level.
    fn close(&mut self, el: Element) -> Option<Frame> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.children.push(Node::Element(el));
                None
            }
            None => {
                self.mark();
                Some(Frame::Stanza(el))
            }
        }
    }
}

fn cost(e: &Element) -> usize {
    NODE_COST
        + e.name.len()
        + e.ns.len()
        + e.attrs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
}

fn start_element<R>(reader: &NsReader<R>, s: &BytesStart<'_>) -> Result<Element, XmppError> {
    let (ns, local) = reader.resolver().resolve_element(s.name());
    let ns = match ns {
        ResolveResult::Bound(n) => std::str::from_utf8(n.as_ref())
            .map_err(|_| XmppError::InvalidUtf8)?
            .to_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(_) => {
            return Err(XmppError::Xml("element uses an undeclared prefix".into()))
        }
    };
    let name = std::str::from_utf8(local.as_ref())
        .map_err(|_| XmppError::InvalidUtf8)?
        .to_owned();
    let mut el = Element {
        name,
        ns,
        attrs: Vec::new(),
        children: Vec::new(),
    };
    for a in s.attributes() {
        let a = a.map_err(|e| XmppError::Xml(format!("bad attribute: {e}")))?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| XmppError::InvalidUtf8)?;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let raw = std::str::from_utf8(&a.value).map_err(|_| XmppError::InvalidUtf8)?;
        let val = quick_xml::escape::unescape(raw)
            .map_err(|e| XmppError::Xml(format!("bad attribute value: {e}")))?;
        if el.attrs.iter().any(|(k, _)| k == key) {
            return Err(XmppError::Xml("duplicate attribute".into()));
        }
        el.attrs.push((key.to_owned(), val.into_owned()));
    }
    Ok(el)
}

fn map_xml_err(e: quick_xml::Error) -> XmppError {
    match e {
        quick_xml::Error::Io(io) => io_err_ref(&io),
        quick_xml::Error::Encoding(_) => XmppError::InvalidUtf8,
        other => XmppError::Xml(other.to_string()),
    }
}

pub(crate) fn io_err(e: io::Error) -> XmppError {
    io_err_ref(&e)
}

fn io_err_ref(e: &io::Error) -> XmppError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => XmppError::Closed,
        _ => XmppError::Io(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::NS_CLIENT;
    use tokio::io::AsyncWriteExt;

    const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.org' version='1.0'>";

    async fn parse_all(input: Vec<u8>, limit: usize) -> Vec<Result<Frame, XmppError>> {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let feeder = tokio::spawn(async move {
            // Feed in small pieces so frames straddle read boundaries.
            for chunk in input.chunks(7) {
                if server.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = server.shutdown().await;
            // Keep the peer open until the reader is done.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut server, &mut sink).await;
        });
        let mut xs = XmlStream::new(client, limit);
        let mut out = Vec::new();
        loop {
            let r = xs.next().await;
            let stop = r.is_err() || matches!(r, Ok(Frame::StreamEnd));
            out.push(r);
            if stop {
                break;
            }
        }
        drop(xs);
        let _ = feeder.await;
        out
    }

    #[tokio::test]
    async fn parses_stanzas_with_namespaces_and_entities() {
        let s = format!(
            "{HDR}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\n \
             <message from='a@b/c' type='chat'><body>1 &lt; 2 &amp; &#x263A; <![CDATA[<raw>]]></body><x:y xmlns:x='urn:x'/></message></stream:stream>"
        );
        let frames = parse_all(s.into_bytes(), 4096).await;
        let Ok(Frame::StreamStart(h)) = &frames[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(h.attr("id"), Some("x"));
        let Ok(Frame::Stanza(f)) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert!(f.is("features", NS_STREAM));
        let tls = f.child("starttls", crate::xml::NS_TLS).unwrap();
        assert!(tls.has_child("required", crate::xml::NS_TLS));
        let Ok(Frame::Stanza(m)) = &frames[2] else {
            panic!("{frames:?}")
        };
        assert!(m.is("message", NS_CLIENT));
        assert_eq!(
            m.child("body", NS_CLIENT).unwrap().text(),
            "1 < 2 & \u{263A} <raw>"
        );
        assert!(m.has_child("y", "urn:x"));
        assert_eq!(frames[3], Ok(Frame::StreamEnd));
    }

    #[tokio::test]
    async fn oversize_stanza_is_refused() {
        let big = "A".repeat(10_000);
        let s = format!("{HDR}<message><body>{big}</body></message>");
        let frames = parse_all(s.into_bytes(), 4096).await;
        assert_eq!(
            frames.last().unwrap(),
            &Err(XmppError::StanzaTooLarge(4096))
        );
    }

    /// A stanza trickled slower than its deadline ends the stream; whitespace and whole
    /// stanzas spread over a longer time do not.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_stanza_ends_at_its_deadline() {
        use std::time::Duration;
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut xs = XmlStream::new(client, 4096);
        xs.set_stanza_deadline(Duration::from_secs(10));
        server.write_all(HDR.as_bytes()).await.unwrap();
        assert!(matches!(xs.next().await, Ok(Frame::StreamStart(_))));
        // Keepalives and quick stanzas, a minute apart: all well.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            server.write_all(b" <presence/>").await.unwrap();
            assert!(matches!(xs.next().await, Ok(Frame::Stanza(_))));
        }
        // One stanza, a byte a second.
        let reader = tokio::spawn(async move {
            let r = xs.next().await;
            (r, xs)
        });
        let slow = format!("<message><body>{}", "x".repeat(30));
        for b in slow.bytes() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if server.write_all(&[b]).await.is_err() {
                break;
            }
        }
        // Without the deadline the reader would see the end of the stream instead.
        drop(server);
        let (r, _xs) = reader.await.unwrap();
        assert_eq!(r, Err(XmppError::StanzaTooSlow(10)));
    }

    #[tokio::test]
    async fn many_small_elements_hit_the_tree_budget() {
        // Tiny elements cost far more in memory than on the wire.
        let s = format!("{HDR}<message>{}</message>", "<a/>".repeat(1000));
        let frames = parse_all(s.into_bytes(), 4096).await;
        assert_eq!(
            frames.last().unwrap(),
            &Err(XmppError::StanzaTooLarge(4096))
        );
    }

    /// Keep-alive whitespace between stanzas never adds up across stanzas.
    /// (One uninterrupted whitespace run is a single text event and is
    /// bounded like a stanza.)
    #[tokio::test]
    async fn whitespace_keepalives_never_trip_the_limit() {
        let s = format!(
            "{HDR}{}",
            format!("{}<presence/>", " \n".repeat(300)).repeat(40)
        );
        let frames = parse_all(s.into_bytes(), 1024).await;
        let n = frames
            .iter()
            .filter(|f| matches!(f, Ok(Frame::Stanza(_))))
            .count();
        assert_eq!(n, 40, "{:?}", frames.last());
    }

    #[tokio::test]
    async fn many_stanzas_in_sequence_each_get_the_full_limit() {
        let one = format!("<message><body>{}</body></message>", "b".repeat(900));
        let s = format!("{HDR}{}", one.repeat(50));
        let frames = parse_all(s.into_bytes(), 1024).await;
        let n = frames
            .iter()
            .filter(|f| matches!(f, Ok(Frame::Stanza(_))))
            .count();
        assert_eq!(n, 50);
    }

    #[tokio::test]
    async fn malformed_xml_is_an_error() {
        for bad in [
            "<message><body>x</message>",
            "<message a='1' a='2'/>",
            "<message><!-- c --></message>",
            "<message><body>&foo;</body></message>",
            "<p:message/>",
            "hello",
            "<message><body>&#0;</body></message>",
        ] {
            let frames = parse_all(format!("{HDR}{bad}").into_bytes(), 4096).await;
            assert!(
                matches!(frames.last().unwrap(), Err(XmppError::Xml(_))),
                "{bad}: {frames:?}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_utf8_is_an_error() {
        let mut s = format!("{HDR}<message><body>").into_bytes();
        s.extend_from_slice(&[0xff, 0xfe, b'x']);
        s.extend_from_slice(b"</body></message>");
        let frames = parse_all(s, 4096).await;
        assert_eq!(frames.last().unwrap(), &Err(XmppError::InvalidUtf8));
    }

    #[tokio::test]
    async fn deep_nesting_is_refused() {
        let s = format!("{HDR}<message>{}", "<a>".repeat(200));
        let frames = parse_all(s.into_bytes(), 1 << 20).await;
        assert!(matches!(frames.last().unwrap(), Err(XmppError::Xml(_))));
    }

    #[tokio::test]
    async fn eof_is_closed() {
        let frames = parse_all(format!("{HDR}<message>").into_bytes(), 4096).await;
        assert_eq!(frames.last().unwrap(), &Err(XmppError::Closed));
    }

    /// Cheap fuzzing: random bytes and random mutations of a valid stream
    /// never panic and always end in a frame or a typed error.
    #[tokio::test]
    async fn random_input_never_panics() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = format!(
            "{HDR}<message to='a@b' type='chat'><body>hi &amp; bye</body><x xmlns='urn:y' k='v'/></message><iq id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
        )
        .into_bytes();
        for i in 0..300 {
            let input: Vec<u8> = if i % 2 == 0 {
                (0..(rnd() % 400)).map(|_| rnd() as u8).collect()
            } else {
                let mut v = valid.clone();
                for _ in 0..(1 + rnd() % 5) {
                    let p = (rnd() as usize) % v.len();
                    match rnd() % 3 {
                        0 => v[p] = rnd() as u8,
                        1 => {
                            v.remove(p);
                        }
                        _ => v.insert(p, b"<>&'\"/\xff"[(rnd() % 7) as usize]),
                    }
                }
                v
            };
            let frames = parse_all(input, 512).await;
            assert!(!frames.is_empty());
        }
    }
}
