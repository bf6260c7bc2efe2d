//! multipart/* bodies (RFC 2046 section 5.1), as used by SIP for SDP plus ISUP, SIPREC
//! metadata and the like.
//!
//! A body is `preamble CRLF? "--" boundary CRLF part (CRLF "--" boundary CRLF part)*
//! CRLF "--" boundary "--" epilogue`; each part is MIME headers, a blank line, content.
//! Parts are yielded lazily. Limits: at most `parts_max` parts (then
//! [`MultipartError::TooManyParts`]), boundary at most [`BOUNDARY_BYTES_MAX`] bytes, and
//! nested multiparts are searched for SDP at most [`NESTING_MAX`] levels deep.

use crate::header::ContentType;
use crate::text::{find, find_headers_end, trim};

/// RFC 2046 allows 70; a little slack for sloppy senders.
pub const BOUNDARY_BYTES_MAX: usize = 100;
/// How deep [`find_sdp`] descends into nested multiparts.
pub const NESTING_MAX: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("multipart body has no boundary parameter")]
    NoBoundary,
    #[error("multipart boundary longer than {BOUNDARY_BYTES_MAX} bytes or empty")]
    BadBoundary,
    #[error("multipart body does not contain its first boundary")]
    NoFirstBoundary,
    #[error("multipart body has more than {max} parts")]
    TooManyParts { max: usize },
    #[error("multipart nesting deeper than {NESTING_MAX}")]
    TooDeep,
}

/// One body part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The part's MIME headers (may be empty).
    pub headers: &'a [u8],
    /// The part's content.
    pub body: &'a [u8],
}

impl<'a> Part<'a> {
    /// The part's Content-Type (`text/plain` is the RFC 2046 default when absent: `None`).
    pub fn content_type(&self) -> Option<ContentType<'a>> {
        let text = std::str::from_utf8(self.headers).ok()?;
        text.split('\n').find_map(|line| {
            let (n, v) = line.split_once(':')?;
            let n = trim(n);
            (n.eq_ignore_ascii_case("content-type") || n.eq_ignore_ascii_case("c"))
                .then(|| ContentType::parse(v))
                .flatten()
        })
    }
}

/// Iterator over the parts of a multipart body.
pub struct Parts<'a> {
    rest: &'a [u8],
    delim: [u8; BOUNDARY_BYTES_MAX + 2],
    delim_len: usize,
    parts: usize,
    parts_max: usize,
    done: bool,
}

impl<'a> Parts<'a> {
    /// Starts iterating `body` with `boundary` (from the Content-Type parameter).
    pub fn new(
        body: &'a [u8],
        boundary: &str,
        parts_max: usize,
    ) -> Result<Parts<'a>, MultipartError> {
        let b = boundary.as_bytes();
        if b.is_empty() || b.len() > BOUNDARY_BYTES_MAX {
            return Err(MultipartError::BadBoundary);
        }
        let mut delim = [0u8; BOUNDARY_BYTES_MAX + 2];
        delim[..2].copy_from_slice(b"--");
        delim[2..2 + b.len()].copy_from_slice(b);
        let delim_len = b.len() + 2;
        let d = &delim[..delim_len];
        // The first delimiter may start the body or follow a preamble line.
        let start = if body.starts_with(d) {
            0
        } else {
            let mut from = 0;
            loop {
                let p = find(&body[from..], d).ok_or(MultipartError::NoFirstBoundary)? + from;
                if body[p - 1] == b'\n' {
                    break p;
                }
                from = p + 1;
            }
        };
        Ok(Parts {
            rest: &body[start..],
            delim,
            delim_len,
            parts: 0,
            parts_max,
            done: false,
        })
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, MultipartError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let d = &self.delim[..self.delim_len];
        // self.rest starts with the delimiter.
        let after = &self.rest[d.len().min(self.rest.len())..];
        if after.starts_with(b"--") {
            self.done = true;
            return None;
        }
        // Skip transport padding and the CRLF ending the delimiter line.
        let line_end = match after.iter().position(|&b| b == b'\n') {
            Some(p) => p + 1,
            None => {
                self.done = true;
                return None;
            }
        };
        let part_start = &after[line_end..];
        // The part ends at the next CRLF "--" boundary (LF alone accepted too).
        let mut from = 0;
        let (content_end, next_start) = loop {
            match find(&part_start[from..], d) {
                Some(p) => {
                    let p = p + from;
                    if p == 0 || part_start[p - 1] == b'\n' {
                        let mut end = p;
                        if end > 0 && part_start[end - 1] == b'\n' {
                            end -= 1;
                            if end > 0 && part_start[end - 1] == b'\r' {
                                end -= 1;
                            }
                        }
                        break (end, p);
                    }
                    from = p + 1;
                }
                // No closing delimiter: the rest is the last part (truncated body).
                None => break (part_start.len(), part_start.len()),
            }
        };
        if self.parts >= self.parts_max {
            self.done = true;
            return Some(Err(MultipartError::TooManyParts {
                max: self.parts_max,
            }));
        }
        self.parts += 1;
        let content = &part_start[..content_end];
        self.rest = &part_start[next_start..];
        if self.rest.is_empty() {
            self.done = true;
        }
        let part = if content.starts_with(b"\r\n") || content.starts_with(b"\n") {
            // No part headers.
            let skip = if content[0] == b'\r' { 2 } else { 1 };
            Part {
                headers: &content[..0],
                body: &content[skip..],
            }
        } else {
            match find_headers_end(content) {
                Some((h, b)) => Part {
                    headers: &content[..h],
                    body: &content[b..],
                },
                None => Part {
                    headers: content,
                    body: &content[content.len()..],
                },
            }
        };
        Some(Ok(part))
    }
}

/// Finds the first `application/sdp` part, descending into nested multiparts up to
/// [`NESTING_MAX`] levels. `Ok(None)` when there is none.
pub fn find_sdp<'a>(
    body: &'a [u8],
    ctype: &ContentType<'_>,
    parts_max: usize,
) -> Result<Option<&'a [u8]>, MultipartError> {
    find_sdp_depth(body, ctype, parts_max, 0)
}

fn find_sdp_depth<'a>(
    body: &'a [u8],
    ctype: &ContentType<'_>,
    parts_max: usize,
    depth: usize,
) -> Result<Option<&'a [u8]>, MultipartError> {
    if depth >= NESTING_MAX {
        return Err(MultipartError::TooDeep);
    }
    let boundary = ctype.boundary().ok_or(MultipartError::NoBoundary)?;
    for part in Parts::new(body, boundary, parts_max)? {
        let part = part?;
        if let Some(ct) = part.content_type() {
            if ct.is_sdp() {
                return Ok(Some(part.body));
            }
            if ct.is_multipart() {
                if let Some(sdp) = find_sdp_depth(part.body, &ct, parts_max, depth + 1)? {
                    return Ok(Some(sdp));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 198.51.100.1\r\n\r\n--b1\r\nContent-Type: application/isup;version=itu-t92+\r\nContent-Disposition: signal;handling=optional\r\n\r\n\x01\x02\x03\r\n--b1--\r\n";

    #[test]
    fn parts_and_sdp() {
        let parts: Vec<_> = Parts::new(BODY, "b1", 8)
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\n");
        assert_eq!(parts[1].body, b"\x01\x02\x03");
        assert_eq!(parts[1].content_type().unwrap().subtype, "isup");
        let ct = ContentType::parse("multipart/mixed;boundary=b1").unwrap();
        assert_eq!(find_sdp(BODY, &ct, 8).unwrap(), Some(parts[0].body));
    }

    #[test]
    fn limits() {
        let r: Vec<_> = Parts::new(BODY, "b1", 1).unwrap().collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1], Err(MultipartError::TooManyParts { max: 1 }));
        assert!(matches!(
            Parts::new(BODY, "zz", 8),
            Err(MultipartError::NoFirstBoundary)
        ));
        let long = "x".repeat(BOUNDARY_BYTES_MAX + 1);
        assert!(matches!(
            Parts::new(BODY, &long, 8),
            Err(MultipartError::BadBoundary)
        ));
        let ct = ContentType::parse("multipart/mixed").unwrap();
        assert_eq!(find_sdp(BODY, &ct, 8), Err(MultipartError::NoBoundary));
    }

    #[test]
    fn nested_and_lf_only() {
        let body = b"--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\nContent-Type: application/sdp\n\nv=0\n--i--\n--o--\n";
        let ct = ContentType::parse("multipart/mixed; boundary=o").unwrap();
        assert_eq!(find_sdp(body, &ct, 8).unwrap(), Some(&b"v=0"[..]));
    }
}
