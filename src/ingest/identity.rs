//! Who is who: authors from every source resolve to contacts. A phone number or
//! e-mail address is the strongest identity; a platform user id is scoped to its
//! format; a name is the weakest (and merges people of the same name, which the
//! user can split later). "Me" is one contact, found from the export itself,
//! config aliases or `--me`.

use super::records::{Id, id_of};
use super::{Author, Format};

/// The contact id of the person whose twin this is.
pub fn me_id() -> Id {
    id_of(&[b"contact", b"me"])
}

/// The identity strings of an author, strongest first.
pub fn identities(format: Format, author: &Author) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if let Some(h) = author
        .handle
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        out.push(handle_identity(format, h));
    } else if let Some(phone) = phone(&author.name) {
        // WhatsApp writes unknown contacts as their number.
        out.push(format!("tel:{phone}"));
    }
    let name = normalize_name(&author.name);
    if !name.is_empty() {
        out.push(format!("name:{name}"));
    }
    out
}

/// The identity of a handle: a phone or e-mail is global, anything else is
/// scoped to its platform.
pub fn handle_identity(format: Format, handle: &str) -> String {
    if let Some(p) = phone(handle) {
        format!("tel:{p}")
    } else if let Some(mail) = email(handle) {
        format!("mail:{mail}")
    } else {
        format!("id:{}:{handle}", platform(format))
    }
}

/// Formats that share one user-id namespace.
fn platform(format: Format) -> &'static str {
    match format {
        Format::Messenger | Format::Instagram => "meta",
        Format::Signal | Format::Sigexport => "signal",
        Format::Gchat | Format::Hangouts => "google",
        other => other.name(),
    }
}

/// `+1 (555) 010-0199` -> `+15550100199`; None unless it is clearly a number.
pub fn phone(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_start_matches('\u{200e}')
        .trim_end_matches('\u{200e}');
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '-' | '(' | ')' | '.' | '\u{a0}' | '\u{202f}' | '\u{2011}' => {}
            _ => return None,
        }
    }
    let digits = out.trim_start_matches('+').len();
    (7..=15).contains(&digits).then_some(out)
}

fn email(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches("mailto:");
    let (user, domain) = s.split_once('@')?;
    (!user.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
        .then(|| s.to_lowercase())
}

/// An identity string for people: `tel:+1555` -> `+1555`, `id:slack:U1` -> `U1 (slack)`.
pub fn display_identity(identity: &str) -> String {
    if let Some(rest) = identity.strip_prefix("id:")
        && let Some((platform, id)) = rest.split_once(':')
    {
        return format!("{id} ({platform})");
    }
    identity
        .split_once(':')
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| identity.to_string())
}

/// Lowercased, inner whitespace collapsed, invisible marks removed.
pub fn normalize_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !matches!(c, '\u{200e}' | '\u{200f}' | '\u{feff}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Decides whether an author is "me".
#[derive(Debug, Clone, Default)]
pub struct MeMatcher {
    identities: Vec<String>,
}

impl MeMatcher {
    /// From config `identity.me` and `--me` values (names, numbers, addresses).
    pub fn new(aliases: &[String]) -> MeMatcher {
        let mut identities = Vec::new();
        for a in aliases {
            if let Some(p) = phone(a) {
                identities.push(format!("tel:{p}"));
            } else if let Some(m) = email(a) {
                identities.push(format!("mail:{m}"));
            } else {
                let n = normalize_name(a);
                if !n.is_empty() {
                    identities.push(format!("name:{n}"));
                }
            }
        }
        MeMatcher { identities }
    }

    pub fn is_me(&self, author: &Author, ids: &[String]) -> bool {
        author.me == Some(true) || ids.iter().any(|i| self.identities.contains(i))
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The identity strings that mean me.
    pub fn identities(&self) -> &[String] {
        &self.identities
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(name: &str, handle: Option<&str>) -> Author {
        Author {
            name: name.into(),
            handle: handle.map(String::from),
            me: None,
        }
    }

    #[test]
    fn phones_and_mails_normalise() {
        assert_eq!(phone("+1 (555) 010-0199").as_deref(), Some("+15550100199"));
        assert_eq!(
            phone("\u{200e}+358\u{a0}40 1234567").as_deref(),
            Some("+358401234567")
        );
        assert_eq!(phone("Alice"), None);
        assert_eq!(phone("12"), None);
        assert_eq!(email("Bob@Example.COM").as_deref(), Some("bob@example.com"));
        assert_eq!(email("not an @ address"), None);
    }

    #[test]
    fn identities_are_strongest_first() {
        assert_eq!(
            identities(Format::Whatsapp, &author("+1 555 010 0199", None)),
            vec!["tel:+15550100199", "name:+1 555 010 0199"]
        );
        assert_eq!(
            identities(Format::Slack, &author("Ann  Lee", Some("U024BE7LH"))),
            vec!["id:slack:U024BE7LH", "name:ann lee"]
        );
        assert_eq!(
            identities(Format::Instagram, &author("x", Some("42")))[0],
            identities(Format::Messenger, &author("y", Some("42")))[0],
            "Messenger and Instagram share Meta's ids"
        );
    }

    #[test]
    fn identities_read_well() {
        assert_eq!(display_identity("tel:+15550100"), "+15550100");
        assert_eq!(display_identity("mail:a@b.org"), "a@b.org");
        assert_eq!(display_identity("id:signal:2b3c"), "2b3c (signal)");
    }

    #[test]
    fn me_comes_from_the_export_or_aliases() {
        let m = MeMatcher::new(&["Jo Doe".into(), "+1 555 010 0100".into(), "jo@x.org".into()]);
        let check = |a: Author| {
            let ids = identities(Format::Mbox, &a);
            m.is_me(&a, &ids)
        };
        assert!(check(author("jo  doe", None)));
        assert!(check(author("Someone", Some("+15550100100"))));
        assert!(check(author("J", Some("JO@x.org"))));
        assert!(!check(author("Alice", None)));
        assert!(check(Author {
            name: "You".into(),
            handle: None,
            me: Some(true)
        }));
    }
}
