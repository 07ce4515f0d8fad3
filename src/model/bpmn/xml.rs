//! Just enough XML for BPMN: a bounded, namespace-resolved element tree
//! read with `quick-xml`, and a writer with the escaping BPMN files need.
//!
//! Reading builds a small tree rather than walking events because a BPMN
//! file refers forwards and backwards (flows name nodes by id, the diagram
//! names both), and a process is small next to the limits below. Elements
//! and attributes are named by namespace URI, never by prefix: `bpmn:task`,
//! `semantic:task`, `bpmn2:task` and a `task` under a default namespace are
//! one element.
//!
//! A DOCTYPE is refused outright: BPMN has no use for one, and its entity
//! declarations are how a small file expands to gigabytes ("billion
//! laughs"). Only the five predefined entities and character references
//! are read.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The most elements a file may hold: far beyond a process of
/// [`crate::model::definition::limits::ACTIVITIES`] with its diagram, and
/// small enough to keep the tree's memory bounded.
pub const MAX_ELEMENTS: usize = 500_000;
/// How deeply elements may nest (sub-processes inside sub-processes…).
pub const MAX_DEPTH: usize = 256;

/// One element, its attributes and what it holds.
#[derive(Debug, Clone, Default)]
pub struct Element {
    /// The namespace URI; empty for none.
    pub ns: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Element>,
    /// The element's own text (character data and CDATA), as written.
    pub text: String,
    /// Where the element starts in the file (1-based line).
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    /// The namespace URI; empty for an attribute without a prefix.
    pub ns: String,
    pub name: String,
    pub value: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// An attribute without a namespace (`id`, `name`, `sourceRef`…).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attributes.iter().find(|a| a.ns == ns && a.name == name).map(|a| a.value.as_str())
    }

    pub fn children_named<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }
}

/// Why a file is not XML flowdesk reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("line {line}, column {column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    #[error(
        "line {line}: the file declares a DOCTYPE; flowdesk reads no DTDs or entity declarations (they can expand a small file to gigabytes)"
    )]
    Doctype { line: usize },
    #[error("line {line}: the entity `&{name};` is not one of XML's own (&lt; &gt; &amp; &apos; &quot;)")]
    UnknownEntity { line: usize, name: String },
    #[error("more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("line {line}: elements nest more than {MAX_DEPTH} deep")]
    TooDeep { line: usize },
    #[error("the file holds no element")]
    Empty,
}

/// Line and column (1-based, in characters) of a byte offset.
fn place(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Lines counted as the reader moves forward, so that naming each
/// element's line costs only the text since the last one.
struct Lines<'t> {
    text: &'t str,
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: usize) -> usize {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        if offset < self.offset {
            return place(self.text, offset).0;
        }
        self.line += self.text[self.offset..offset].matches('\n').count();
        self.offset = offset;
        self.line
    }
}

/// Reads a document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut lines = Lines { text, offset: 0, line: 1 };
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position() as usize;
        let syntax = |offset: usize, message: String| {
            let (line, column) = place(text, offset);
            XmlError::Syntax { line, column, message }
        };
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(err) => return Err(syntax(reader.error_position() as usize, err.to_string())),
        };
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(syntax(position, "content after the root element".to_owned()));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { line: lines.at(position) });
                }
                let element = element(&reader, start, lines.at(position)).map_err(|m| syntax(position, m))?;
                if matches!(event, Event::Start(_)) {
                    stack.push(element);
                } else {
                    close(&mut stack, &mut root, element);
                }
            }
            Event::End(_) => match stack.pop() {
                Some(element) => close(&mut stack, &mut root, element),
                None => return Err(syntax(position, "a closing tag without its opening tag".to_owned())),
            },
            Event::Text(content) => {
                let decoded = content.xml10_content().map_err(|e| syntax(position, e.to_string()))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&decoded),
                    None if decoded.trim().is_empty() => {}
                    None => return Err(syntax(position, "text outside the root element".to_owned())),
                }
            }
            Event::CData(content) => {
                let decoded = content.xml10_content().map_err(|e| syntax(position, e.to_string()))?;
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&decoded);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| syntax(position, e.to_string()))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(value) => value.to_owned(),
                            None => {
                                return Err(XmlError::UnknownEntity {
                                    line: lines.at(position),
                                    name: name.into_owned(),
                                });
                            }
                        }
                    }
                    Err(err) => return Err(syntax(position, err.to_string())),
                };
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype { line: lines.at(position) }),
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding() {
                    let name = String::from_utf8_lossy(&encoding).to_ascii_lowercase();
                    if name != "utf-8" && name != "utf8" {
                        return Err(syntax(
                            position,
                            format!("the file says it is in {name}; flowdesk reads BPMN files in UTF-8"),
                        ));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Syntax {
            line: place(text, text.len()).0,
            column: place(text, text.len()).1,
            message: format!("the file ends before `{}` (line {}) is closed", open.name, open.line),
        });
    }
    root.ok_or(XmlError::Empty)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn element(reader: &NsReader<&[u8]>, start: &BytesStart<'_>, line: usize) -> Result<Element, String> {
    let resolver = reader.resolver();
    let (ns, local) = resolver.resolve_element(start.name());
    let ns = namespace(ns)?;
    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = attribute.key;
        // Namespace declarations are the resolver's business.
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (attr_ns, attr_local) = resolver.resolve_attribute(key);
        let value = attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| match e {
            quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) => {
                format!("the entity `&{name};` is not one of XML's own (&lt; &gt; &amp; &apos; &quot;)")
            }
            other => other.to_string(),
        })?;
        attributes.push(Attribute {
            ns: namespace(attr_ns)?,
            name: String::from_utf8_lossy(attr_local.as_ref()).into_owned(),
            value: value.into_owned(),
        });
    }
    Ok(Element { ns, name, attributes, children: Vec::new(), text: String::new(), line })
}

fn namespace(resolved: ResolveResult<'_>) -> Result<String, String> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => {
            Err(format!("the prefix `{}` is not declared", String::from_utf8_lossy(&prefix)))
        }
    }
}

/// Text as character data: `&`, `<` and `>` escaped, and carriage returns
/// as references, which a reader would otherwise turn into line feeds.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '\r']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(ch),
        }
    }
    Cow::Owned(out)
}

/// An attribute value: quotes escaped, and line breaks and tabs as
/// references, which attribute-value normalisation would turn into spaces.
pub fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for ch in value.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Whether XML 1.0 can hold this text at all: it has no way to write most
/// control characters, not even as references.
pub fn representable(text: &str) -> bool {
    text.chars().all(|c| matches!(c, '\t' | '\n' | '\r') || !(c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}'))
}

/// Writes an indented document through `quick-xml`'s writer. Element names
/// are written with their prefix (`bpmn:task`).
pub struct XmlWriter {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Default for XmlWriter {
    fn default() -> XmlWriter {
        XmlWriter::new()
    }
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
        // Writing into memory cannot fail.
        let _ = writer.write_event(Event::Decl(quick_xml::events::BytesDecl::new("1.0", Some("UTF-8"), None)));
        XmlWriter { writer }
    }

    fn start<'a>(name: &'a str, attributes: &[(&str, &str)]) -> BytesStart<'a> {
        let mut start = BytesStart::new(name);
        for (key, value) in attributes {
            let escaped = escape_attribute(value);
            start.push_attribute(quick_xml::events::attributes::Attribute {
                key: quick_xml::name::QName(key.as_bytes()),
                value: Cow::Owned(escaped.into_bytes()),
            });
        }
        start
    }

    pub fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let _ = self.writer.write_event(Event::Start(XmlWriter::start(name, attributes)));
    }

    pub fn close(&mut self, name: &str) {
        let _ = self.writer.write_event(Event::End(quick_xml::events::BytesEnd::new(name)));
    }

    pub fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let _ = self.writer.write_event(Event::Empty(XmlWriter::start(name, attributes)));
    }

    /// An element holding only text.
    pub fn text(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.open(name, attributes);
        let _ = self.writer.write_event(Event::Text(BytesText::from_escaped(escape_text(text))));
        self.close(name);
    }

    pub fn finish(self) -> String {
        let mut bytes = self.writer.into_inner();
        bytes.push(b'\n');
        // Only `str`s were written.
        String::from_utf8(bytes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_named_by_namespace_whatever_the_prefix() {
        for text in [
            r#"<a:root xmlns:a="urn:x"><a:child id="1"/></a:root>"#,
            r#"<root xmlns="urn:x"><child id="1"/></root>"#,
            r#"<b:root xmlns:b="urn:x"><child xmlns="urn:x" id="1"/></b:root>"#,
        ] {
            let root = parse(text).unwrap();
            assert!(root.is("urn:x", "root"), "{text}");
            assert_eq!(root.child("urn:x", "child").and_then(|c| c.attr("id")), Some("1"), "{text}");
        }
    }

    #[test]
    fn text_keeps_references_cdata_and_line_breaks() {
        let root = parse("<r>a &lt; b &amp;&#10;<![CDATA[<c>]]>\r\nd</r>").unwrap();
        assert_eq!(root.text, "a < b &\n<c>\nd");
        let root = parse(r#"<r v="x&#10;y&quot;"/>"#).unwrap();
        assert_eq!(root.attr("v"), Some("x\ny\""));
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let awkward = "tab\there\r\nline \"quoted\" & <tagged> ünïcode";
        let mut writer = XmlWriter::new();
        writer.open("r", &[("v", awkward)]);
        writer.text("t", &[], awkward);
        writer.close("r");
        let root = parse(&writer.finish()).unwrap();
        assert_eq!(root.attr("v"), Some(awkward));
        assert_eq!(root.children[0].text, awkward);
    }

    #[test]
    fn a_doctype_and_unknown_entities_are_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(parse(laughs).unwrap_err(), XmlError::Doctype { line: 2 });
        assert!(matches!(parse("<r>&lol;</r>"), Err(XmlError::UnknownEntity { line: 1, .. })));
        assert!(parse(r#"<r v="&lol;"/>"#).unwrap_err().to_string().contains("&lol;"));
    }

    #[test]
    fn broken_files_say_where() {
        let err = parse("<r>\n  <a>\n</r>").unwrap_err().to_string();
        assert!(err.starts_with("line 3"), "{err}");
        let err = parse("<r>\n  <a>").unwrap_err().to_string();
        assert!(err.contains("ends before"), "{err}");
        assert!(matches!(parse(""), Err(XmlError::Empty)));
        assert!(parse("<a:r/>").unwrap_err().to_string().contains("prefix `a`"));
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(&deep), Err(XmlError::TooDeep { .. })));
        assert!(parse(r#"<?xml version="1.0" encoding="ISO-8859-1"?><r/>"#).is_err());
    }
}
