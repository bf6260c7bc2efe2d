//! Byte and text helpers shared by the SIP and SDP parsers.
//!
//! Everything here works on borrowed slices, allocates nothing and runs in time linear in
//! its input, so callers only have to bound the input.

/// SIP linear white space inside a header value: SP, HTAB, and the CR/LF of a folded line.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn trim_bytes(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

/// Finds `needle` in `hay` (naive; needles here are short and haystacks bounded by limits).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if needle.len() > hay.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// Position just after the blank line that ends a header section (CRLFCRLF, or LF LF /
/// LF CRLF from lenient senders), and the position where that blank line starts.
pub(crate) fn find_headers_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(p) = data[i..].iter().position(|&b| b == b'\n') {
        let lf = i + p;
        let next = &data[lf + 1..];
        if next.first() == Some(&b'\n') {
            return Some((lf + 1, lf + 2));
        }
        if next.len() >= 2 && next[0] == b'\r' && next[1] == b'\n' {
            return Some((lf + 1, lf + 3));
        }
        i = lf + 1;
    }
    None
}

/// Splits a header value at top-level commas (not inside quotes or `<...>`), trimming each
/// element and skipping empty ones.
pub(crate) struct ListIter<'a> {
    rest: &'a str,
}

pub(crate) fn split_list(s: &str) -> ListIter<'_> {
    ListIter { rest: s }
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            let mut in_quote = false;
            let mut in_angle = false;
            let mut escaped = false;
            let mut end = bytes.len();
            for (i, &b) in bytes.iter().enumerate() {
                if in_quote {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_quote = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_quote = true,
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    b',' if !in_angle => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let item = trim(&self.rest[..end]);
            self.rest = if end < bytes.len() {
                &self.rest[end + 1..]
            } else {
                ""
            };
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Iterates `;name[=value]` parameters (the input starts after the first `;` or is empty).
/// Quoted values keep their quotes removed; semicolons inside quotes do not split.
pub(crate) struct ParamIter<'a> {
    rest: &'a str,
}

pub(crate) fn params(s: &str) -> ParamIter<'_> {
    ParamIter { rest: s }
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            let mut in_quote = false;
            let mut end = bytes.len();
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    b'"' => in_quote = !in_quote,
                    b';' if !in_quote => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let item = trim(&self.rest[..end]);
            self.rest = if end < bytes.len() {
                &self.rest[end + 1..]
            } else {
                ""
            };
            if item.is_empty() {
                continue;
            }
            return Some(match item.split_once('=') {
                Some((n, v)) => {
                    let v = trim(v);
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (trim(n), Some(v))
                }
                None => (item, None),
            });
        }
    }
}

/// The value of parameter `name` (ASCII case-insensitive): `Some(None)` for a flag
/// parameter, `Some(Some(v))` for `name=v`.
pub(crate) fn param<'a>(s: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(s)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses a decimal without sign, rejecting empty strings, non-digits and overflow.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let v: Vec<_> = split_list(r#""a,b" <sip:x@y;p=1,2>;tag=1 , <sip:z>,, sip:q"#).collect();
        assert_eq!(
            v,
            vec![r#""a,b" <sip:x@y;p=1,2>;tag=1"#, "<sip:z>", "sip:q"]
        );
    }

    #[test]
    fn params_parse() {
        let p: Vec<_> = params("tag=abc; lr ;x=\"a;b\"").collect();
        assert_eq!(
            p,
            vec![("tag", Some("abc")), ("lr", None), ("x", Some("a;b"))]
        );
        assert_eq!(param("TAG=1", "tag"), Some(Some("1")));
        assert_eq!(param("a=1", "tag"), None);
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"hello world", b"world"), Some(6));
        assert_eq!(find(b"aaab", b"ab"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find_headers_end(b"A\r\nB\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(find_headers_end(b"A\nB\n\nbody"), Some((4, 5)));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
    }
}
